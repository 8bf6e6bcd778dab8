"""Data-parallel training over MPI: the same weights as one process, identical replicas,
one checkpoint, a failing rank ending the job, and the command line's --workers.

The jobs run under ``mpiexec`` (``pip install mpi4py mpich``; the nox session
``distributed`` installs both); without them those tests skip, saying so. The pieces that
need no second process (the weighted allreduce, the shards) run everywhere.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import array_api_compat
import numpy as np
import pytest

import xpnet
from helpers import BackendCase, assert_close
from test_cli import ROOT, run_main
from xpnet import distributed
from xpnet.cli._workers import available_cores, find_mpiexec, without_workers
from xpnet.distributed import Communicator, ShardedLoader, allreduce_mean
from xpnet.distributed._comm import pick_device
from xpnet.distributed._nccl import NcclAllreduce, import_nccl
from xpnet.distributed._route import host_view, nccl_verdict

HERE = Path(__file__).resolve().parent


def _mpiexec() -> str:
    pytest.importorskip("mpi4py", reason="MPI tests need mpi4py (pip install mpi4py mpich)")
    found = find_mpiexec()
    if found is None:
        pytest.skip("no mpiexec found (pip install mpich)")
    return found


def _launch(
    processes: int, *args: str, timeout: float = 120, backend: str = "numpy"
) -> subprocess.CompletedProcess[str]:
    command = [_mpiexec(), "-n", str(processes), sys.executable, "-m", "mpi4py", *args]
    env = {**os.environ, "XPNET_BACKEND": backend, "OMP_NUM_THREADS": "1"}
    return subprocess.run(
        command, capture_output=True, text=True, timeout=timeout, cwd=ROOT, env=env, check=False
    )


def _one_process_reference(backend: str, clip: float | None = None) -> dict[str, np.ndarray]:
    sys.path.insert(0, str(HERE))
    import mpi_job

    with xpnet.use_backend(backend):
        model, optimizer, train, test = mpi_job.build()
        xpnet.fit(model, optimizer, train, 3, test_loader=test, progress=False, log=None,
                  clip_grad_norm=clip)  # fmt: skip
        return {k: np.asarray(xpnet.to_numpy(v)) for k, v in model.state_dict().items()}


def _check_job(
    folder: Path, processes: int, backend: str, checkpoint: bool = True, clip: float | None = None
) -> None:
    """The replicas equal one process's weights (float64, within 1e-12) and each other
    exactly, and rank 0 alone wrote the one checkpoint."""
    reference = _one_process_reference(backend, clip)
    replicas = [dict(np.load(folder / f"rank{r}.npz")) for r in range(processes)]
    for key, want in reference.items():
        np.testing.assert_allclose(replicas[0][key], want, rtol=0, atol=1e-12, err_msg=key)
        for other in replicas[1:]:  # every replica holds exactly the same weights
            np.testing.assert_array_equal(other[key], replicas[0][key], err_msg=key)
    if not checkpoint:
        return
    saved = xpnet.train.load_checkpoint(folder / "run.safetensors")
    assert saved.meta["epoch"] == 3
    for key, want in reference.items():
        np.testing.assert_allclose(saved.model[key], want, rtol=0, atol=1e-12)
    names = sorted(p.name for p in folder.iterdir())
    assert names == sorted(
        ["history.npy", "path.txt", "run.safetensors", *(f"rank{r}.npz" for r in range(processes))]
    )


@pytest.mark.parametrize("processes", [1, 2])
def test_data_parallel_training_equals_one_process(tmp_path: Path, processes: int) -> None:
    result = _launch(processes, str(HERE / "mpi_job.py"), str(tmp_path))
    assert result.returncode == 0, result.stderr
    _check_job(tmp_path, processes, "numpy")
    if processes > 1:  # NumPy gradients are summed where they are, with no staging copy
        assert (tmp_path / "path.txt").read_text() == "MPI in place"


@pytest.mark.parametrize(
    ("library", "path"),
    [
        ("torch", "MPI in place"),
        ("jax", "MPI through host"),
        ("array_api_strict", "MPI through host"),
    ],
)
def test_data_parallel_training_on_other_backends(tmp_path: Path, library: str, path: str) -> None:
    """torch CPU tensors are summed in their own memory (a NumPy view of their memory); JAX's
    immutable arrays and array-api-strict's go through a host buffer. Both equal one process."""
    _mpiexec()
    pytest.importorskip(library, reason=f"{library} is not installed")
    result = _launch(2, str(HERE / "mpi_job.py"), str(tmp_path), backend=library, timeout=240)
    assert result.returncode == 0, result.stderr
    _check_job(tmp_path, 2, library)
    assert (tmp_path / "path.txt").read_text() == path


def test_data_parallel_training_clips_the_averaged_gradients(tmp_path: Path) -> None:
    """fit(clip_grad_norm=) over two processes clips the average, as one process clips
    the whole batch's gradient: the same weights, which clipping changed."""
    import mpi_job

    result = _launch(2, str(HERE / "mpi_job.py"), str(tmp_path), "--clip")
    assert result.returncode == 0, result.stderr
    _check_job(tmp_path, 2, "numpy", clip=mpi_job.CLIP)
    unclipped = _one_process_reference("numpy")
    replica = dict(np.load(tmp_path / "rank0.npz"))
    assert not np.allclose(replica["4.weight"], unclipped["4.weight"])


def test_a_loop_of_ones_own_with_the_distributed_optimizer(tmp_path: Path) -> None:
    """ShardedLoader, value-and-grad and DistributedOptimizer.step(grads, count=...) by hand
    give the weights fit gives in one process."""
    result = _launch(2, str(HERE / "mpi_job.py"), str(tmp_path), "--own-loop")
    assert result.returncode == 0, result.stderr
    _check_job(tmp_path, 2, "numpy", checkpoint=False)


def test_a_failing_rank_ends_the_whole_job(tmp_path: Path) -> None:
    start = time.monotonic()
    result = _launch(2, str(HERE / "mpi_job.py"), str(tmp_path), "--fail-rank", "1", timeout=60)
    assert result.returncode != 0
    assert "rank 1 fails on purpose" in result.stderr
    assert time.monotonic() - start < 60
    assert not (tmp_path / "rank0.npz").exists()  # rank 0 did not carry on alone


def test_processes_started_by_hand_agree_or_end_together_within_seconds(
    tmp_path: Path,
) -> None:
    # Started by hand (no -m mpi4py), one process with other options, or one whose options
    # do not parse: every process ends within seconds with that process's message, none
    # waits forever in a collective.
    pytest.importorskip("sklearn")
    mpiexec = _mpiexec()
    env = {**os.environ, "XPNET_BACKEND": "numpy", "OMP_NUM_THREADS": "1"}
    common = [sys.executable, "-m", "xpnet", "train", "--distributed", "--no-progress"]
    for other, words in [
        (["--epochs", "2"], "processes disagree on the settings and data: argv is"),
        (["--model", "mlp"], "processes disagree on the settings and data"),
        (["--epochs", "0"], "--epochs: expected an integer from 1 to 1000000000, got '0'"),
    ]:
        start = time.monotonic()
        result = subprocess.run(
            [mpiexec, "-n", "1", *common, "--epochs", "1", ":", "-n", "1", *common, *other],
            capture_output=True, text=True, cwd=tmp_path, env=env, timeout=120, check=False,
        )  # fmt: skip
        assert result.returncode != 0 and words in result.stderr, result.stderr
        assert "Traceback" not in result.stderr
        assert time.monotonic() - start < 60


def test_a_process_waiting_inside_mpi_still_stops_on_sigterm(tmp_path: Path) -> None:
    # Python runs a signal's handler only between bytecodes, never while MPI waits in C for
    # a process that will not come: the stop still ends it, within the grace period and
    # saying why, and mpiexec ends the rest of the job.
    pytest.importorskip("sklearn")
    from xpnet.cli import STOP_GRACE_SECONDS

    env = {**os.environ, "XPNET_BACKEND": "numpy", "OMP_NUM_THREADS": "1"}
    command = [_mpiexec(), "-n", "2", sys.executable, str(HERE / "mpi_stuck.py"), str(tmp_path)]
    job = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                           cwd=ROOT, env=env)  # fmt: skip
    try:
        waiting = tmp_path / "waiting"
        deadline = time.monotonic() + 90
        while not waiting.exists() and job.poll() is None and time.monotonic() < deadline:
            time.sleep(0.1)
        assert waiting.exists(), job.communicate(timeout=30)
        time.sleep(1.0)  # well inside the collective by now
        start = time.monotonic()
        os.kill(int(waiting.read_text()), signal.SIGTERM)
        _, err = job.communicate(timeout=60)
        assert time.monotonic() - start < STOP_GRACE_SECONDS + 20
    finally:
        job.kill()
        job.wait()
    assert job.returncode != 0
    assert "xpnet: terminated; this process did not stop within 3 s (it waits inside MPI" in err
    assert "Traceback" not in err
    assert not (tmp_path / "model.safetensors").exists()


def test_workers_on_the_command_line(tmp_path: Path) -> None:
    pytest.importorskip("sklearn")
    _mpiexec()
    if available_cores() < 2:
        pytest.skip("--workers 2 needs two cores")
    weights = tmp_path / "w.safetensors"
    result = subprocess.run(
        [sys.executable, "-m", "xpnet", "train", "--no-progress", "--epochs", "1",
         "--workers", "2", "--save", str(weights)],
        capture_output=True, text=True, cwd=ROOT, timeout=300,
        env={**os.environ, "XPNET_BACKEND": "numpy", "OMP_NUM_THREADS": "1"},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert sum(line.startswith("test accuracy:") for line in lines) == 1  # rank 0 only
    assert any(", 2 processes" in line for line in lines)
    assert xpnet.train.load_checkpoint(weights).meta["epoch"] == 1
    # The same command again: refused once, by the launcher, before any process starts.
    again = subprocess.run(
        [sys.executable, "-m", "xpnet", "train", "--no-progress", "--epochs", "1",
         "--workers", "2", "--save", str(weights)],
        capture_output=True, text=True, cwd=ROOT, timeout=120,
    )  # fmt: skip
    assert again.returncode == 2 and "running 2 processes" not in again.stdout
    assert again.stderr.count(f"--save: {weights} exists") == 1


def test_workers_without_mpiexec_is_a_clear_error(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("mpi4py", reason="the check for mpiexec comes after mpi4py's")
    from xpnet.cli import _workers

    monkeypatch.setattr(_workers, "find_mpiexec", lambda: None)
    status, _, err = run_main(capsys, "train", "--workers", "1")
    assert status == 2 and "--workers: no mpiexec found" in err


def test_workers_beyond_the_cores_or_the_batch_are_refused_before_starting(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Every process of --workers starts on this machine: more than its cores only wait on
    # each other (MPI's waits spin). The batch is shared out: more than its images leave
    # processes with nothing. Both are refused before anything starts, naming the numbers.
    from xpnet.cli import _workers

    monkeypatch.setattr(_workers, "find_mpiexec", lambda: pytest.fail("must not start"))
    cores = available_cores()
    status, _, err = run_main(capsys, "train", "--workers", str(cores + 1))
    assert status == 2
    assert f"--workers: {cores + 1} processes, but this machine has {cores} core" in err
    status, _, err = run_main(capsys, "train", "--workers", "1000")
    assert status == 2 and f"give at most {cores}," in err
    status, _, err = run_main(capsys, "train", "--workers", "2", "--batch-size", "1")
    refused = "--workers: 2 processes for batches of 1" if cores >= 2 else "this machine has 1 core"
    assert status == 2 and refused in err


def test_without_workers_drops_the_option() -> None:
    assert without_workers(["train", "--workers", "3", "--epochs", "2"]) == [
        "train",
        "--epochs",
        "2",
    ]
    assert without_workers(["train", "--workers=3"]) == ["train"]


# -- in one process -------------------------------------------------------------------------


class _FakeSum(Communicator):
    """A communicator whose sum adds the contributions of imagined other processes."""

    def __init__(self, others: list[np.ndarray]) -> None:
        super().__init__(rank=0, size=len(others) + 1, local_rank=0)
        self.others = others
        self.buffers: list[Any] = []  # every communication buffer, to scribble on later

    def allreduce_sum_(self, buffer: Any) -> None:
        xp = array_api_compat.array_namespace(buffer)
        device = array_api_compat.device(buffer)
        buffer[...] = buffer + xp.asarray(sum(self.others), device=device)
        self.buffers.append(buffer)

    def scribble(self) -> None:
        """Overwrite the buffers, as a communicator reusing them would."""
        for buffer in self.buffers:
            buffer[...] = 999.0


def test_allreduce_mean_weights_by_count_and_returns_fresh_arrays(backend: BackendCase) -> None:
    grad_a = np.asarray([[1.0, 2.0], [3.0, 4.0]])
    grad_b = np.asarray([[5.0, 6.0], [7.0, 8.0]])
    # The other process saw 1 example (mean gradient grad_b, loss 0.5, 1 correct).
    other = np.concatenate([grad_b.ravel() * 1, [0.5 * 1, 1, 1]])
    comm = _FakeSum([other])
    grads = {"w": backend.asarray(grad_a)}
    averaged, loss, correct, examples = allreduce_mean(
        grads, comm, count=3, loss=backend.asarray(np.asarray(2.0)), correct=2
    )
    assert examples == 4 and correct == 3
    assert loss == pytest.approx((2.0 * 3 + 0.5) / 4)
    backend.check_like(averaged["w"], grads["w"])
    comm.scribble()  # the results are not views of the communication buffer
    assert_close(averaged["w"], (grad_a * 3 + grad_b) / 4)
    assert averaged["w"] is not grads["w"]


def test_a_share_of_no_examples_contributes_nothing_even_nan(backend: BackendCase) -> None:
    """An empty share's mean gradient and loss are NaN (a mean over nothing); count=0 must
    keep them out of the sum."""
    grad_b = np.asarray([1.0, -2.0])
    comm = _FakeSum([np.concatenate([grad_b * 2, [0.75 * 2, 2, 2]])])
    nan = backend.asarray(np.full(2, np.nan))
    averaged, loss, correct, examples = allreduce_mean(
        {"b": nan}, comm, count=0, loss=backend.asarray(np.asarray(np.nan)), correct=0
    )
    assert (examples, correct) == (2, 2) and loss == pytest.approx(0.75)
    assert_close(averaged["b"], grad_b)


def test_a_step_on_an_empty_share_applies_the_others_gradients() -> None:
    """DistributedStep with no examples here (a small last batch): the update is the other
    processes' mean gradient, and the loss theirs."""
    from xpnet import functional as F
    from xpnet import nn, optim

    layer = nn.Linear(2, 3, rng=np.random.default_rng(0), dtype="float64")
    start = {k: np.array(xpnet.to_numpy(v)) for k, v in layer.named_parameters()}
    theirs = {"weight": np.arange(6.0).reshape(3, 2), "bias": np.asarray([1.0, 0.0, -1.0])}
    other = np.concatenate([theirs["weight"].ravel() * 4, theirs["bias"] * 4, [0.5 * 4, 3, 4]])
    step = distributed.DistributedStep(layer, optim.SGD(layer, lr=0.1), F.cross_entropy,
                                       _FakeSum([other]))  # fmt: skip
    loss, correct = step.run(np.zeros((0, 2)), np.zeros((0,), np.int64))
    assert (float(loss), int(correct), step.examples) == (0.5, 3, 4)
    for name, value in layer.named_parameters():
        assert_close(value, start[name] - 0.1 * theirs[name])


def test_the_buffer_to_sum_must_be_flat_contiguous_float64() -> None:
    comm = Communicator(0, 1, 0)
    for bad, what in [
        (np.zeros(4, np.float32), "1-d float32"),
        (np.zeros((2, 2)), "2-d float64"),
        (np.zeros(8)[::2], "non-contiguous 1-d float64"),
    ]:
        with pytest.raises(
            TypeError, match=f"buffer: expected a contiguous 1-d float64 array, got a {what} array"
        ):
            comm.allreduce_sum_(bad)
    comm.allreduce_sum_(np.zeros(4))
    assert comm.last_path == "alone"


def test_processes_use_nccl_only_when_every_one_can() -> None:
    """The job's choice from each process's (host, GPU, has NCCL): NCCL needs every process
    on a GPU of its own with NCCL; otherwise all use MPI, warning when GPUs were meant."""
    assert nccl_verdict([("a", 0, True), ("a", 1, True), ("b", 0, True)]) == (True, None)
    assert nccl_verdict([("a", 0, True), ("a", None, False)]) == (False, None)
    use, why = nccl_verdict([("a", 0, True), ("b", 0, False), ("c", 0, False)])
    assert not use and why is not None and why.startswith("NCCL is missing on ranks 1, 2")
    use, why = nccl_verdict([("a", 0, True), ("a", 0, True), ("b", 1, True)])
    assert not use and why is not None and "processes share GPU 0 of a" in why


def test_host_buffers_are_summed_in_their_own_memory() -> None:
    """What MPI sums in place: NumPy arrays, and torch CPU tensors through a NumPy view of
    the same memory; not JAX's immutable arrays (they go through a host copy)."""
    numpy_buffer = np.zeros(4)
    assert host_view(numpy_buffer) is numpy_buffer
    assert host_view(np.zeros(4)[::2].copy()) is not None
    frozen = np.zeros(4)
    frozen.flags.writeable = False
    assert host_view(frozen) is None
    torch = pytest.importorskip("torch")
    tensor = torch.zeros(4, dtype=torch.float64)
    view = host_view(tensor)
    assert view is not None and view.ctypes.data == tensor.data_ptr()
    view += 2.5  # what MPI's in-place sum does to it
    np.testing.assert_array_equal(tensor.numpy(), np.full(4, 2.5))


def test_every_process_of_a_machine_takes_its_own_gpu() -> None:
    assert pick_device("cupy", None, local_rank=3, gpu_count=2) == "cuda:1"
    assert pick_device("cupy", "gpu", local_rank=2, gpu_count=4) == "cuda:2"
    assert pick_device("torch", "cuda", local_rank=1, gpu_count=8) == "cuda:1"
    # An explicit device is the user's choice; CPUs and machines without GPUs stay as asked.
    assert pick_device("cupy", "cuda:0", local_rank=1, gpu_count=2) == "cuda:0"
    assert pick_device("torch", None, local_rank=1, gpu_count=2) is None
    assert pick_device("torch", "cpu", local_rank=1, gpu_count=2) == "cpu"
    assert pick_device("numpy", None, local_rank=1, gpu_count=0) is None
    assert pick_device("cupy", None, local_rank=1, gpu_count=0) is None


def test_nccl_protocol_over_mpi(tmp_path: Path) -> None:
    """NcclAllreduce draws the id on rank 0, broadcasts it, joins every rank, and sums in
    place: checked against a stand-in for cupy.cuda.nccl that does the same on the host."""
    result = _launch(2, str(HERE / "nccl_standin_job.py"), str(tmp_path))
    assert result.returncode == 0, result.stderr
    for rank in range(2):
        np.testing.assert_array_equal(np.load(tmp_path / f"rank{rank}.npy"), np.arange(10.0) * 3)


def test_the_distributed_optimizer_averages_then_updates(backend: BackendCase) -> None:
    """SGD through the wrapper: w - lr * (3 * g_here + g_other) / 4, against the rule by hand;
    schedulers and fit see the wrapped optimizer."""
    from xpnet import nn, optim

    with xpnet.use_backend(backend.name, backend.device):
        layer = nn.Linear(2, 1, rng=np.random.default_rng(0), dtype="float64")
        start = {k: np.array(xpnet.to_numpy(v)) for k, v in layer.named_parameters()}
        inner = optim.SGD(layer, lr=0.5)
        here = {"weight": np.asarray([[1.0, 2.0]]), "bias": np.asarray([4.0])}
        other = {"weight": np.asarray([[5.0, 6.0]]), "bias": np.asarray([8.0])}
        comm = _FakeSum([np.concatenate([other["weight"].ravel(), other["bias"], [0.25, 1, 1]])])
        wrapper = distributed.DistributedOptimizer(inner, comm)
        grads = {k: xpnet.asarray(v) for k, v in here.items()}
        loss, correct, examples = wrapper.step(grads, count=3, loss=1.0, correct=2)
        assert (examples, correct) == (4, 3) and loss == pytest.approx((3 * 1.0 + 0.25) / 4)
        for name, value in layer.named_parameters():
            want = start[name] - 0.5 * (3 * here[name] + other[name]) / 4
            assert_close(value, want)
        scheduler = optim.StepLR(wrapper, step_size=1, gamma=0.1)
        scheduler.step()
        assert wrapper.lr == inner.lr == pytest.approx(0.05)
        assert wrapper.state_dict().keys() == inner.state_dict().keys()
        with pytest.raises(ValueError, match="comm: differs from the DistributedOptimizer's"):
            xpnet.fit(layer, wrapper, None, 1, comm=Communicator(0, 1, 0))  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="optimizer: expected an xpnet Optimizer, got Linear"):
        distributed.DistributedOptimizer(layer, comm)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="comm: expected an xpnet.distributed.Communicator"):
        distributed.DistributedOptimizer(inner, None)  # type: ignore[arg-type]


def test_a_single_process_communicator_needs_no_mpi() -> None:
    comm = distributed.init() if "PMI_RANK" not in os.environ else None
    if comm is None:
        pytest.skip("running under an MPI launcher")
    assert comm.size >= 1 and 0 <= comm.rank < comm.size
    value = np.asarray(3.0)
    assert comm.broadcast(value).shape == ()  # 0-d stays 0-d


def test_shards_cover_every_batch_once_in_the_same_order() -> None:
    from xpnet import data

    dataset = data.Dataset(np.zeros((23, 1, 2, 2), np.uint8), np.arange(23) % 5, 5)
    loader = data.DataLoader(dataset, batch_size=8, shuffle=True, seed=4)
    order = loader.order(1)
    for size in (1, 2, 3):
        shards = [ShardedLoader(loader, Communicator(r, size, r)) for r in range(size)]
        for start in range(0, 23, 8):
            batch = order[start : start + 8]
            parts = [shard.share(batch) for shard in shards]
            np.testing.assert_array_equal(np.concatenate(parts), batch)
            assert max(map(len, parts)) - min(map(len, parts)) <= 1
    shard = ShardedLoader(loader, Communicator(1, 3, 1))
    assert len(shard) == len(loader) == 3 and shard.batch_size == 8


# -- GPUs: NCCL (skipped without CUDA) ----------------------------------------------------


def _gpus_with_nccl() -> int:
    cupy = pytest.importorskip("cupy", reason="NCCL tests need CuPy (pip install cupy-cuda12x)")
    try:
        count = int(cupy.cuda.runtime.getDeviceCount())
    except Exception:
        count = 0
    if count == 0:
        pytest.skip("NCCL tests need a CUDA GPU; none here")
    if import_nccl() is None:
        pytest.skip("CuPy found no NCCL library (pip install nvidia-nccl-cu12)")
    return count


class _OneProcessMpi:
    """mpi4py's bcast for a job of one process (NcclAllreduce needs nothing else)."""

    def bcast(self, value: Any, root: int = 0) -> Any:
        return value


def test_nccl_sums_cupy_and_torch_cuda_buffers_in_place_on_one_gpu() -> None:
    """N=1 over real NCCL. The sum over one process is the buffer itself, so the calls are
    recorded too: the buffer's own address (in place, no copy: a torch tensor reaches CuPy
    through DLPack), its length, float64, and for torch the stream torch is working on, so
    that torch's next kernel sees the sum."""
    _gpus_with_nccl()
    import cupy

    summer = NcclAllreduce(_OneProcessMpi(), 0, 1, 0)
    calls: list[tuple[int, int, int, int, int, int]] = []
    real = summer._comm.allReduce

    def recorded(*args: int) -> None:
        calls.append(args)
        real(*args)

    summer._comm = type("Recorded", (), {"allReduce": staticmethod(recorded)})()
    buffer = cupy.arange(1000, dtype=cupy.float64) * 0.5
    pointer, before = buffer.data.ptr, buffer.get()
    summer.sum_(buffer)
    np.testing.assert_array_equal(buffer.get(), before)
    stream = cupy.cuda.get_current_stream().ptr
    assert calls[-1] == (
        pointer,
        pointer,
        1000,
        summer.nccl.NCCL_FLOAT64,
        summer.nccl.NCCL_SUM,
        stream,
    )
    torch = pytest.importorskip("torch")
    side = torch.cuda.Stream(device="cuda:0")
    with torch.cuda.stream(side):
        tensor = torch.arange(1000, dtype=torch.float64, device="cuda:0") * 2
        summer.sum_(tensor)
        after = (tensor + 1).cpu().numpy()
    np.testing.assert_array_equal(after, np.arange(1000.0) * 2 + 1)
    sent, received, count, dtype, _, on_stream = calls[-1]
    assert sent == received == tensor.data_ptr() and count == 1000
    assert dtype == summer.nccl.NCCL_FLOAT64 and on_stream == side.cuda_stream


def test_data_parallel_training_over_nccl(tmp_path: Path) -> None:
    """Two processes, one GPU each, summing over NCCL: equal to one process."""
    if _gpus_with_nccl() < 2:
        pytest.skip("two processes over NCCL need two GPUs (NCCL refuses two ranks on one)")
    _mpiexec()
    result = _launch(2, str(HERE / "mpi_job.py"), str(tmp_path), backend="cupy", timeout=300)
    assert result.returncode == 0, result.stderr
    _check_job(tmp_path, 2, "cupy")
    assert (tmp_path / "path.txt").read_text() == "NCCL"


# -- Dask: batch inference ------------------------------------------------------------------


@pytest.fixture(scope="module")
def cluster() -> Any:
    pytest.importorskip("dask.array", reason="Dask tests need pip install 'dask[array]'")
    pytest.importorskip("distributed", reason="Dask tests need pip install distributed")
    from distributed import LocalCluster

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                      dashboard_address=None) as local:  # fmt: skip
        yield local


def test_predict_on_a_local_cluster_equals_the_model_here(cluster: Any) -> None:
    import dask.array as da
    from distributed import Client

    from xpnet import models

    rng = np.random.default_rng(5)
    model = models.build_model("lenet5", 1, 10, 28, rng=rng)
    host = rng.integers(0, 255, (70, 1, 28, 28)).astype(np.uint8)
    images = da.from_array(host, chunks=(16, 1, 28, 28))  # 5 chunks, the last of 6
    with Client(cluster):
        logits = distributed.predict(model, images, mean=0.13, std=0.31)
        assert logits.shape == (70, 10) and logits.chunks[0] == images.chunks[0]
        got = logits.compute()
    with xpnet.use_backend("numpy"):
        x = ((host.astype(np.float32) / 255.0) - 0.13) / 0.31
        want = xpnet.to_numpy(model.eval()(xpnet.asarray(x)))
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    with pytest.raises(TypeError, match="images: expected a dask array"):
        distributed.predict(model, host)


def test_predict_on_the_command_line_through_a_scheduler(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], cluster: Any
) -> None:
    pytest.importorskip("sklearn")
    weights = str(tmp_path / "w.safetensors")
    status, _, err = run_main(capsys, "train", "--no-progress", "--epochs", "1", "--save", weights)
    assert status == 0, err
    status, here, _ = run_main(capsys, "predict", weights, "--limit", "50")
    assert status == 0
    status, there, err = run_main(capsys, "predict", weights, "--limit", "50",
                                  "--dask-scheduler", cluster.scheduler_address)  # fmt: skip
    assert status == 0, err
    assert there == here  # the same predictions, computed on the cluster
    status, _, err = run_main(capsys, "predict", weights, "--dask-scheduler", "tcp://127.0.0.1:9")
    assert status == 2 and "--dask-scheduler: cannot reach tcp://127.0.0.1:9" in err
