"""Faults and hostile input: nothing lost, nothing silent, no traceback.

Each case states the fault and the one-line error (or the correct result) expected. The
checkpoint cases run on the NumPy backend: they are about files and processes, not
arithmetic (which the rest of the suite checks on every backend).
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import xpnet
from test_cli import ROOT, run_main
from test_cli import xpnet as xpnet_command
from test_train import loaders, tiny
from xpnet import _atomic, optim
from xpnet.train import Checkpoint, CheckpointError, fit, load_checkpoint, save_checkpoint
from xpnet.train import loop as loop_module
from xpnet.train._guard import CheckpointLock, lock_path

# -- data loss: checkpoints ------------------------------------------------------------------


def _fit(path: Path, epochs: int = 1, **kwargs: Any) -> list[dict[str, float]]:
    with xpnet.use_backend("numpy"):
        model = tiny()
        train, _ = loaders()
        return fit(
            model, optim.Adam(model), train, epochs, checkpoint=path, progress=False, log=None,
            **kwargs,
        )  # fmt: skip


@pytest.fixture
def no_training(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fail the test if an epoch starts: errors about the checkpoint path come first."""

    def refuse(*args: Any) -> Any:
        raise AssertionError("an epoch ran before the checkpoint path was checked")

    monkeypatch.setattr(loop_module, "_train_epoch", refuse)


def test_an_existing_checkpoint_is_not_overwritten_without_asking(tmp_path: Path) -> None:
    path = tmp_path / "run.safetensors"
    _fit(path)
    before = path.read_bytes()
    with pytest.raises(CheckpointError, match=r"run\.safetensors: exists; pass overwrite=True"):
        _fit(path)
    assert path.read_bytes() == before
    _fit(path, overwrite=True, epochs=2)  # asked for: replaced by a fresh run
    assert load_checkpoint(path).meta["epoch"] == 2


def test_the_command_line_refuses_an_existing_save_without_overwrite(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("sklearn")
    path = tmp_path / "digits.safetensors"
    common = ("train", "--no-progress", "--epochs", "1", "--save", str(path))
    assert run_main(capsys, *common)[0] == 0
    before = path.read_bytes()
    status, out, err = run_main(capsys, *common)
    assert status == 2 and f"--save: {path} exists" in err and "--overwrite" in err
    assert "training time" not in out and path.read_bytes() == before
    assert run_main(capsys, *common, "--overwrite")[0] == 0


def test_a_held_checkpoint_path_fails_at_once_naming_the_holder(
    tmp_path: Path, no_training: None
) -> None:
    path = tmp_path / "shared.safetensors"
    with CheckpointLock(path):
        holder = lock_path(path).read_text()
        assert f"pid {os.getpid()}" in holder
        with pytest.raises(CheckpointError, match=r"in use by another run \(pid \d+ on "):
            _fit(path)
    assert not lock_path(path).exists()  # released and removed
    assert not path.exists()


def test_two_command_line_runs_on_one_path_the_second_fails_at_once(tmp_path: Path) -> None:
    pytest.importorskip("sklearn")
    path = tmp_path / "busy.safetensors"
    env = {**os.environ, "XPNET_BACKEND": "numpy"}
    command = [sys.executable, "-m", "xpnet", "train", "--no-progress", "--save", str(path)]
    first = subprocess.Popen(
        [*command, "--epochs", "100000", "--schedule", "constant"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT, env=env,
    )  # fmt: skip
    try:
        assert first.stdout is not None
        while not (line := first.stdout.readline()).startswith("epoch 1/"):
            assert line, first.communicate()  # the first run must reach its first epoch
        second = subprocess.run(
            [*command, "--resume"], capture_output=True, text=True, cwd=ROOT, env=env,
            timeout=60,
        )  # fmt: skip
        assert second.returncode == 2
        assert f"{path}: in use by another run (pid {first.pid} on " in second.stderr
        assert "training time" not in second.stdout
    finally:
        first.terminate()
        first.communicate(timeout=60)
    assert load_checkpoint(path).meta["epoch"] >= 1


def test_abandoned_temporary_files_are_removed_and_live_ones_kept(tmp_path: Path) -> None:
    import fcntl

    path = tmp_path / "model.safetensors"
    stale = tmp_path / ".model.safetensors.k1llz.tmp"
    stale.write_bytes(b"half a checkpoint")
    live = tmp_path / ".model.safetensors.wr1te.tmp"
    with open(live, "wb") as writer:  # another writer, mid-write: holds its lock
        fcntl.flock(writer.fileno(), fcntl.LOCK_EX)
        _fit(path)
        assert not stale.exists() and live.exists()
    other = tmp_path / ".other.safetensors.x.tmp"  # another checkpoint's: not ours
    other.write_bytes(b"")
    _fit(path, resume=True, epochs=2)
    assert other.exists()


class _Stopped(Exception):
    """What the test's SIGTERM handler raises (the CLI raises its Terminated)."""


def _stop(signum: int, frame: object) -> None:
    raise _Stopped


@pytest.mark.parametrize("moment", ["created", "written", "renamed"])
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_signal_at_any_moment_of_a_checkpoint_write_leaves_one_whole_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, moment: str, signum: int
) -> None:
    """CI once found a temporary file left after SIGTERM: the signal landed between
    mkstemp creating the file and the code that would remove it. Each moment gets a signal
    here, raised from inside the step, which is the worst place for it to land."""
    assert threading.current_thread() is threading.main_thread()  # where handlers run
    path = tmp_path / "model.safetensors"
    with xpnet.use_backend("numpy"):
        model = tiny()
        save_checkpoint(path, Checkpoint(model.state_dict(), {}, {"epoch": 1}))
        hooked = {"created": (tempfile, "mkstemp"), "written": (os, "fsync"),
                  "renamed": (os, "replace")}[moment]  # fmt: skip
        original = getattr(*hooked)

        def then_signal(*args: Any, **kwargs: Any) -> Any:
            result = original(*args, **kwargs)
            signal.raise_signal(signum)
            return result

        previous = signal.signal(signal.SIGTERM, _stop)
        try:
            monkeypatch.setattr(getattr(_atomic, hooked[0].__name__), hooked[1], then_signal)
            expected = _Stopped if signum == signal.SIGTERM else KeyboardInterrupt
            with pytest.raises(expected):
                save_checkpoint(path, Checkpoint(model.state_dict(), {}, {"epoch": 2}))
        finally:
            monkeypatch.undo()
            signal.signal(signal.SIGTERM, previous)
    assert sorted(p.name for p in tmp_path.iterdir()) == [path.name]
    # The rename is the commit point: a signal after it keeps the new checkpoint.
    assert load_checkpoint(path).meta["epoch"] == (2 if moment == "renamed" else 1)


def test_signals_held_in_a_critical_section_arrive_once_after_it() -> None:
    seen: list[int] = []
    previous = signal.signal(signal.SIGTERM, lambda signum, frame: seen.append(signum))
    try:
        with _atomic.signals_held():
            signal.raise_signal(signal.SIGTERM)
            signal.raise_signal(signal.SIGTERM)
            assert seen == []
        assert seen == [signal.SIGTERM]
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    finally:
        signal.signal(signal.SIGTERM, previous)


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda root: root / "adir", "is a folder; give a file name"),
        (lambda root: root / "afile" / "model.safetensors", "afile is a file"),
        (lambda root: root / "afile" / "deeper" / "model.safetensors", "afile is a file"),
    ],
    ids=["a folder", "parent is a file", "ancestor is a file"],
)
def test_an_unwritable_save_path_fails_before_training(
    tmp_path: Path, no_training: None, make: Any, message: str
) -> None:
    (tmp_path / "adir").mkdir()
    (tmp_path / "afile").write_text("not a folder")
    with pytest.raises(CheckpointError, match=message):
        _fit(make(tmp_path))


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_a_read_only_folder_fails_before_training(tmp_path: Path, no_training: None) -> None:
    folder = tmp_path / "locked"
    folder.mkdir()
    folder.chmod(0o555)
    try:
        with pytest.raises(CheckpointError, match="is not writable"):
            _fit(folder / "model.safetensors")
    finally:
        folder.chmod(0o755)


@pytest.mark.skipif(not hasattr(signal, "SIGXFSZ"), reason="POSIX file-size limits")
def test_a_full_disk_names_the_file_and_leaves_nothing_behind(tmp_path: Path) -> None:
    # The kernel's file-size limit fails a write as a full disk or a quota does: at the lock
    # file, or at the checkpoint. Either way the error names the file, one line, and the
    # folder holds no lock file, no temporary and no partial checkpoint afterwards.
    pytest.importorskip("sklearn")
    for limit, expected in [
        (0, "{path}: cannot write its lock file {sidecar} (File too large); free some space"),
        (20_000, "[Errno 27] File too large: '{path}'"),  # the model's checkpoint: ~80 kB
    ]:
        folder = tmp_path / f"limit{limit}"
        folder.mkdir()
        path = folder / "model.safetensors"

        # Set in a small parent that then becomes xpnet (exec keeps the limit, and the
        # ignored SIGXFSZ: a failed write, not a kill); no preexec_fn forking this process.
        limited = (
            "import os, resource, signal, sys; signal.signal(signal.SIGXFSZ, signal.SIG_IGN); "
            f"resource.setrlimit(resource.RLIMIT_FSIZE, ({limit}, {limit})); "
            "os.execv(sys.executable, [sys.executable, '-m', 'xpnet', *sys.argv[1:]])"
        )
        command = [sys.executable, "-c", limited, "train", "--no-progress", "--save", str(path)]
        result = subprocess.run(command, capture_output=True, text=True, timeout=120, cwd=ROOT,
                                env={**os.environ, "XPNET_BACKEND": "numpy"}, check=False)  # fmt: skip
        message = expected.format(path=path, sidecar=lock_path(path))
        assert result.returncode == 2, result.stderr
        assert result.stderr.splitlines()[-1].startswith(f"xpnet: error: {message}"), result.stderr
        assert "Traceback" not in result.stderr
        assert list(folder.iterdir()) == []


def test_the_command_line_checks_save_before_training(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "afile").write_text("x")
    status, out, err = run_main(
        capsys, "train", "--no-progress", "--save", str(tmp_path / "afile" / "m.safetensors")
    )
    assert status == 2 and "afile is a file" in err
    assert "training " not in out and "Traceback" not in err


# -- silent: damaged and hostile checkpoints ---------------------------------------------------


@pytest.fixture(scope="module")
def good_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real checkpoint of the command line (digits, 1 epoch), to damage in copies."""
    pytest.importorskip("sklearn")
    from xpnet import cli

    path = tmp_path_factory.mktemp("good") / "good.safetensors"
    assert cli.main(["train", "--no-progress", "--epochs", "1", "--save", str(path)]) == 0
    return path


def _rewrite(
    good: Path,
    out: Path,
    *,
    tensors: Any = None,
    meta: Any = None,
    metadata: Any = None,
) -> Path:
    """``good`` with some tensors, metadata fields or ``meta`` entries replaced."""
    import json

    from safetensors.numpy import load, save

    data = good.read_bytes()
    arrays = load(data)
    header = json.loads(data[8 : 8 + int.from_bytes(data[:8], "little")])
    table = dict(header["__metadata__"])
    if meta is not None:
        table["meta"] = json.dumps(meta(json.loads(table["meta"])))
    table.update(metadata or {})
    arrays.update(tensors(arrays) if tensors is not None else {})
    table.pop("digest")
    out.write_bytes(_signed(save(arrays, metadata=table)))
    return out


def _signed(data: bytes) -> bytes:
    """A safetensors file with xpnet's checksums of what it holds (as a writer that put this
    content there would sign it): what then fails is the check of the content itself."""
    import json

    from xpnet.train._safetensors import signed_prefix

    size = int.from_bytes(data[:8], "little")
    header = json.loads(data[8 : 8 + size])
    table = dict(header.pop("__metadata__"))
    table.pop("digest", None)
    payload = memoryview(data[8 + size :])
    in_order = sorted(header.items(), key=lambda item: item[1]["data_offsets"][0])
    views = {name: payload[slice(*entry["data_offsets"])] for name, entry in in_order}
    return signed_prefix(header, table, views) + bytes(payload)


def _set(table: dict[str, Any], dotted: str, value: Any) -> dict[str, Any]:
    head, _, rest = dotted.partition(".")
    if rest:
        table[head] = _set(dict(table[head]), rest, value)
    else:
        table[head] = value
    return table


WEIGHT = "model/0.weight"

DAMAGED = [
    # (case, how the copy is damaged, the error it must give)
    ("bool weights", {"tensors": lambda a: {WEIGHT: a[WEIGHT] > 0}}, "is BOOL, expected floating"),
    ("int32 weights", {"tensors": lambda a: {WEIGHT: a[WEIGHT].astype(np.int32)}}, "is I32"),
    ("uint8 weights", {"tensors": lambda a: {WEIGHT: a[WEIGHT].astype(np.uint8)}}, "is U8"),
    (
        "complex weights",
        {"tensors": lambda a: {WEIGHT: a[WEIGHT].astype(np.complex64)}},
        "is C64, expected floating",
    ),
    (
        "a NaN weight",
        {"tensors": lambda a: {WEIGHT: np.where(a[WEIGHT] > 0, np.nan, a[WEIGHT])}},
        f"holds NaN or infinite values in {WEIGHT}",
    ),
    (
        "an infinite weight",
        {"tensors": lambda a: {WEIGHT: a[WEIGHT] * np.float32(np.inf)}},
        "holds NaN or infinite values",
    ),
    (
        "batch size 0",
        {"meta": lambda m: _set(m, "settings.batch_size", 0)},
        "settings.batch_size should be an integer from 1 to 10000000, found 0",
    ),
    ("meta not a table", {"metadata": {"meta": "[1, 2]"}}, "field 'meta' is not a JSON dict"),
    ("model_keys a number", {"metadata": {"model_keys": "7"}}, "'model_keys' is not a JSON list"),
    ("optimizer a list", {"metadata": {"optimizer": "[]"}}, "'optimizer' is not a JSON dict"),
    ("meta not JSON", {"metadata": {"meta": "{oops"}}, "'meta' is not a JSON dict"),
    (
        "meta nested 100,000 deep",
        {"metadata": {"meta": "[" * 100_000 + "]" * 100_000}},
        "'meta' is not a JSON dict",
    ),
    (
        "normalisation a string",
        {"meta": lambda m: _set(m, "normalisation", "zscore")},
        "normalisation should be [mean, std]",
    ),
    ("rng a list", {"meta": lambda m: _set(m, "rng", [])}, "rng should be a table"),
    (
        "epoch beyond history",
        {"meta": lambda m: _set(m, "epoch", 9)},
        "says epoch 9 but its history has 1 epochs",
    ),
    (
        "image_size 100000",
        {"meta": lambda m: _set(m, "image_size", 100000)},
        "image_size should be an integer from 1 to 4096",
    ),
    ("lr NaN", {"meta": lambda m: _set(m, "settings.lr", float("nan"))}, "settings.lr should be"),
]


@pytest.mark.parametrize(("case", "damage", "message"), DAMAGED, ids=[c[0] for c in DAMAGED])
def test_a_damaged_checkpoint_is_an_error_naming_what(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    good_checkpoint: Path,
    case: str,
    damage: dict[str, Any],
    message: str,
) -> None:
    bad = _rewrite(good_checkpoint, tmp_path / "bad.safetensors", **damage)
    with pytest.raises(CheckpointError, match=re.escape(message)):
        load_checkpoint(bad)
    for command in (["evaluate", str(bad)], ["predict", str(bad)]):
        status, _, err = run_main(capsys, *command)
        assert status == 2 and message in err and "Traceback" not in err, err
        assert err.count("\n") == 1  # one line
    # Resuming from it is refused the same way, before any training.
    status, out, err = run_main(
        capsys, "train", "--no-progress", "--epochs", "3", "--save", str(bad), "--resume"
    )
    assert status == 2 and message in err and "epoch 2/" not in out, err


def _raw_safetensors(path: Path, entries: dict[str, Any], payload: bytes, pad: int = 0) -> Path:
    import json

    header = json.dumps({"__metadata__": {"format": "xpnet-checkpoint/1"}, **entries}).encode()
    path.write_bytes(len(header).to_bytes(8, "little") + header + payload + b"\0" * pad)
    return path


def test_bf16_and_f8_tensors_say_what_is_unsupported(tmp_path: Path) -> None:
    for dtype in ("BF16", "F8_E4M3"):
        size = 2 if dtype == "BF16" else 1
        path = _raw_safetensors(
            tmp_path / f"{dtype}.safetensors",
            {"model/w": {"dtype": dtype, "shape": [3], "data_offsets": [0, 3 * size]}},
            b"\1" * (3 * size),
        )
        with pytest.raises(CheckpointError, match=f"'model/w' has dtype {dtype}, which xpnet"):
            load_checkpoint(path)


def test_truncated_flipped_and_huge_checkpoints_are_refused_without_reading_them(
    tmp_path: Path, good_checkpoint: Path
) -> None:
    data = good_checkpoint.read_bytes()
    truncated = tmp_path / "truncated.safetensors"
    truncated.write_bytes(data[: len(data) - 100])
    with pytest.raises(CheckpointError, match="is truncated or damaged"):
        load_checkpoint(truncated)
    flipped = tmp_path / "flipped.safetensors"
    flipped.write_bytes(bytes([data[0] ^ 0x40]) + data[1:])  # the header's length
    with pytest.raises(CheckpointError, match="not a readable safetensors file"):
        load_checkpoint(flipped)
    sparse = tmp_path / "sparse.safetensors"  # 8 GB of nothing, allocated by no one
    with open(sparse, "wb") as stream:
        stream.truncate(8 * 2**30)
    with pytest.raises(CheckpointError, match="header claims 0 bytes in a file of 8589934592"):
        load_checkpoint(sparse)
    with pytest.raises(CheckpointError, match="is a folder, expected a checkpoint file"):
        load_checkpoint(tmp_path)


def test_resume_with_missing_adam_state_is_refused(tmp_path: Path, good_checkpoint: Path) -> None:
    # The first layer's second moments dropped: zero-filling them would resume another run.
    from xpnet import models

    dropped = _rewrite(good_checkpoint, tmp_path / "partial.safetensors")
    _drop_tensors(dropped, lambda key: "state.0." in key and "exp_avg_sq" in key)
    with xpnet.use_backend("numpy"):
        model = models.build_model("simple_cnn_bn", 1, 10, 8)
        train, _ = loaders()
        with pytest.raises(CheckpointError, match=r"optimizer state is incomplete, missing: 0\."):
            fit(model, optim.Adam(model), train, 3, checkpoint=dropped, resume=True,
                progress=False, log=None)  # fmt: skip
    assert load_checkpoint(dropped).meta["epoch"] == 1  # left as it was


def _drop_tensors(path: Path, unwanted: Any) -> None:
    """Rewrite ``path`` without the tensors whose key ``unwanted`` accepts."""
    import json

    from safetensors.numpy import load, save

    raw = path.read_bytes()
    table = json.loads(raw[8 : 8 + int.from_bytes(raw[:8], "little")])["__metadata__"]
    arrays = load(raw)
    kept = {key: value for key, value in arrays.items() if not unwanted(key)}
    assert len(kept) < len(arrays)
    table = {key: value for key, value in table.items() if key != "digest"}
    path.write_bytes(_signed(save(kept, metadata=table)))


def _header_and_data(data: bytes) -> tuple[dict[str, Any], bytes]:
    import json

    size = int.from_bytes(data[:8], "little")
    return json.loads(data[8 : 8 + size]), data[8 + size :]


def test_every_byte_of_a_checkpoint_is_covered_by_its_checksums(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], good_checkpoint: Path
) -> None:
    # safetensors has no checksum: xpnet writes CRC32C checksums of the data (whole, and
    # tensor by tensor) and of the header, and checks them on every load. A flipped bit in
    # a weight names the tensor; a changed digit in the metadata that leaves valid JSON, the
    # header re-spaced, or the data's own checksum changed, is a changed file, named; never
    # loaded silently.
    import json

    data = good_checkpoint.read_bytes()
    header, payload = _header_and_data(data)
    start = len(data) - len(payload)
    owner = {
        name: entry["data_offsets"] for name, entry in header.items() if name != "__metadata__"
    }
    rng = np.random.default_rng(0)
    for spot in rng.integers(start, len(data), size=12):  # anywhere in the tensors' bytes
        flipped = bytearray(data)
        flipped[spot] ^= 1 << int(rng.integers(8))
        path = tmp_path / "flipped.safetensors"
        path.write_bytes(bytes(flipped))
        (name,) = [n for n, (a, b) in owner.items() if a <= spot - start < b]
        with pytest.raises(CheckpointError, match=f"the data of tensor '{re.escape(name)}' do"):
            load_checkpoint(path)
    text = data[8:start]
    digest = json.loads(header["__metadata__"]["digest"])
    whole = digest["crc32c_data"].encode()
    other = f"{int(whole, 16) ^ 1:08x}".encode()
    cases = [(b'\\"epoch\\": 1', b'\\"epoch\\": 2', "header .* does not match the checksum"),
             (b'"shape":[', b'"shape": [', "header .* does not match the checksum"),
             (whole, other, "header .* does not match the checksum"),
             # the checksums' own key damaged: not taken for a file from before them
             (b'"digest":', b'"digesu":', "metadata field 'digesu' is not one xpnet writes")]  # fmt: skip
    for old, new, message in cases:
        assert old in text, old
        changed = text.replace(old, new, 1)
        if old == b'\\"epoch\\": 1':  # and its history grown to match, as a forger would
            table = json.loads(changed)
            meta = json.loads(table["__metadata__"]["meta"])
            meta["history"] = meta["history"] * 2
            table["__metadata__"]["meta"] = json.dumps(meta)
            changed = json.dumps(table).encode()
        path = tmp_path / "edited.safetensors"
        path.write_bytes(len(changed).to_bytes(8, "little") + changed + payload)
        with pytest.raises(CheckpointError, match=message):
            load_checkpoint(path)
        status, _, err = run_main(capsys, "evaluate", str(path))
        assert status == 2 and "after it was saved" in err and err.count("\n") == 1
    # The files stay plain safetensors: safetensors' own loader reads them.
    from safetensors.numpy import load

    assert set(load(data)) == set(header) - {"__metadata__"}


@pytest.mark.skipif(not hasattr(os, "writev"), reason="gathered writes are POSIX")
def test_a_checkpoint_written_in_short_pieces_is_whole(
    tmp_path: Path, good_checkpoint: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A checkpoint goes out in one gathered write; the kernel may take less than asked
    # (a signal, a pipe, over 2 GB at once). The writer goes on from where it stopped.
    from xpnet.train import _safetensors

    reference = load_checkpoint(good_checkpoint)
    calls = []

    def short_writev(fd: int, pieces: list[memoryview]) -> int:
        calls.append(len(pieces))
        return os.write(fd, pieces[0][: 1 + len(calls) % 700])  # 1..700 bytes of the first

    monkeypatch.setattr(_safetensors.os, "writev", short_writev)
    path = tmp_path / "short.safetensors"
    save_checkpoint(path, reference)
    monkeypatch.undo()
    assert len(calls) > 100
    loaded = load_checkpoint(path)
    assert (
        path.read_bytes()
        == (save_checkpoint(tmp_path / "whole.safetensors", reference)).read_bytes()
    )
    for key, value in reference.model.items():
        np.testing.assert_array_equal(loaded.model[key], value)


def _as_format_one(data: bytes) -> dict[str, str]:
    """A checkpoint's metadata as the format before checksums wrote it: no digest."""
    header, _ = _header_and_data(data)
    table = {k: v for k, v in header["__metadata__"].items() if k != "digest"}
    return {**table, "format": "xpnet-checkpoint/1"}


def test_checkpoints_of_the_sha256_development_versions_still_verify(
    tmp_path: Path, good_checkpoint: Path
) -> None:
    # Checkpoints written while xpnet's digests were SHA-256 (of the data, and of the header
    # as parsed) load, verified; a flipped bit in one is named as damage.
    import hashlib
    import json

    from safetensors.numpy import load, save

    data = good_checkpoint.read_bytes()
    table = _as_format_one(data)
    plain = save(load(data), metadata=table)
    plain_header, plain_payload = _header_and_data(plain)
    plain_header.pop("__metadata__")
    canonical = json.dumps({"tensors": plain_header, "metadata": table}, sort_keys=True)
    table["digest"] = json.dumps({"sha256_data": hashlib.sha256(plain_payload).hexdigest(),
                                  "sha256_header": hashlib.sha256(canonical.encode()).hexdigest()})  # fmt: skip
    old = tmp_path / "sha256.safetensors"
    old.write_bytes(save(load(data), metadata=table))
    loaded, reference = load_checkpoint(old), load_checkpoint(good_checkpoint)
    assert loaded.meta == reference.meta
    for key, value in reference.model.items():
        np.testing.assert_array_equal(loaded.model[key], value)
    flipped = bytearray(old.read_bytes())
    flipped[-3] ^= 4
    old.write_bytes(bytes(flipped))
    with pytest.raises(CheckpointError, match="tensor data do not match the digest"):
        load_checkpoint(old)


def test_a_checkpoint_written_before_digests_loads_with_a_one_line_warning(
    tmp_path: Path, good_checkpoint: Path
) -> None:
    from safetensors.numpy import load, save

    from xpnet.train import UnverifiedCheckpointWarning

    data = good_checkpoint.read_bytes()
    table = _as_format_one(data)
    stripped = tmp_path / "stripped.safetensors"  # the format of checksums, without them
    stripped.write_bytes(save(load(data), metadata={**table, "format": "xpnet-checkpoint/2"}))
    with pytest.raises(CheckpointError, match=r"its checksums \(the metadata field 'digest'\) are missing"):  # fmt: skip
        load_checkpoint(stripped)
    old = tmp_path / "old.safetensors"
    old.write_bytes(save(load(data), metadata=table))  # as the writer before digests did
    with pytest.warns(UnverifiedCheckpointWarning, match=f"{re.escape(str(old))}: written before"):
        loaded = load_checkpoint(old)
    assert loaded.meta == load_checkpoint(good_checkpoint).meta
    result = xpnet_command("evaluate", str(old))  # a process of its own: warnings as printed
    assert result.returncode == 0 and "accuracy" in result.stdout
    assert result.stderr == f"xpnet: warning: {old}: written before checkpoints carried a digest, so its " \
        "contents cannot be verified (saving it again adds one)\n"  # fmt: skip


def test_a_checkpoint_is_read_through_one_handle_while_another_run_saves(
    tmp_path: Path, good_checkpoint: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A save landing between the reads of the header and of the data replaces the file under
    # another name; the read goes on through its one handle and sees one whole checkpoint,
    # never epoch 1's metadata with epoch 2's weights (nor a false "damaged").
    from xpnet.train import checkpoint as checkpoint_module

    path = tmp_path / "live.safetensors"
    path.write_bytes(good_checkpoint.read_bytes())
    first = load_checkpoint(path)
    newer = Checkpoint(model={k: v + 1 for k, v in first.model.items()},
                       optimizer=first.optimizer, meta={**first.meta})  # fmt: skip
    read_data = checkpoint_module.read_exactly
    opened: list[str] = []
    real_open = os.open

    def counting_open(file: Any, *args: Any, **kwargs: Any) -> int:
        opened.append(str(file))
        return real_open(file, *args, **kwargs)

    def save_meanwhile(stream: Any, buffer: Any) -> int:
        save_checkpoint(path, newer)  # another run's epoch lands now
        return read_data(stream, buffer)

    monkeypatch.setattr(checkpoint_module, "read_exactly", save_meanwhile)
    monkeypatch.setattr(checkpoint_module.os, "open", counting_open)
    during = load_checkpoint(path)
    monkeypatch.undo()
    assert opened.count(str(path)) == 1  # (the others: the save's temporary file)
    for key, value in first.model.items():
        np.testing.assert_array_equal(during.model[key], value)
    after = load_checkpoint(path)
    for key, value in newer.model.items():
        np.testing.assert_array_equal(after.model[key], value)


def test_hostile_checkpoint_headers_and_paths_are_clear_errors(tmp_path: Path) -> None:
    # Headers that make other readers crash or allocate, and paths that are not files.
    deep = b"[" * 100_000 + b"]" * 100_000
    cases = [
        (deep, "its header nests too deeply"),
        ({"model/w": {"dtype": ["F32"], "shape": [1], "data_offsets": [0, 4]}},
         "its dtype should be a name such as F32, found ['F32']"),
        ({"model/w": {"dtype": {"F": 32}, "shape": [1], "data_offsets": [0, 4]}},
         "its dtype should be a name"),
        ({"model/w": {"dtype": "F32", "shape": [2**70], "data_offsets": [0, 4]}},
         "holds more values than the file has bytes"),
        ({"model/w": {"dtype": "F32", "shape": [2**40, 2**40, 0], "data_offsets": [0, 4]}},
         "holds more values than the file has bytes"),
        ({"model/w": {"dtype": "F32", "shape": "4", "data_offsets": [0, 4]}},
         "its shape should be a list of sizes"),
        ({"model/w": {"dtype": "F32", "shape": [1], "data_offsets": [4, 8]}},
         "starts at byte 4 of the data, expected 0"),
        ({"model/w": {"dtype": "F32", "shape": [1], "data_offsets": [0, True]}},
         "its data_offsets should be two byte positions"),
    ]  # fmt: skip
    for header, words in cases:
        import json

        text = header if isinstance(header, bytes) else json.dumps(
            {"__metadata__": {"format": "xpnet-checkpoint/1"}, **header}).encode()  # fmt: skip
        path = tmp_path / "hostile.safetensors"
        path.write_bytes(len(text).to_bytes(8, "little") + text + b"\0" * 8)
        with pytest.raises(CheckpointError, match=re.escape(words)):
            load_checkpoint(path)
    fifo = tmp_path / "fifo.safetensors"
    os.mkfifo(fifo)
    zero = tmp_path / "zero.safetensors"
    zero.symlink_to("/dev/zero")
    for path, kind in [(fifo, "a FIFO (named pipe)"), (zero, "a character device"),
                       (tmp_path, "a folder")]:  # fmt: skip
        with pytest.raises(CheckpointError, match=re.escape(f"{path}: is {kind}")):
            load_checkpoint(path)  # at once: a FIFO is not waited on


# -- data files ------------------------------------------------------------------------------


def test_an_idx_file_longer_than_its_header_is_refused_without_reading_it(tmp_path: Path) -> None:
    # The header says one 28x28 image; 64 MiB of zeros follow (compressed to ~64 KiB).
    import gzip

    from xpnet.data import DatasetError, load_idx

    path = tmp_path / "bomb-idx3-ubyte.gz"
    header = (2051).to_bytes(4, "big") + b"".join(n.to_bytes(4, "big") for n in (1, 28, 28))
    with gzip.open(path, "wb", compresslevel=1) as stream:
        stream.write(header + bytes(784))
        for _ in range(64):
            stream.write(bytes(2**20))
    peak = _peak_while_refused(
        lambda: load_idx(path), DatasetError, r"longer than its header declares: header \(1, 28"
    )
    assert peak < 4 * 2**20, f"read {peak / 2**20:.1f} MiB of a file declaring 800 bytes"


def _peak_while_refused(call: Any, error: type[Exception], message: str) -> int:
    """The peak Python memory of ``call``, which must raise ``error`` matching ``message``."""
    import tracemalloc

    tracemalloc.start()
    try:
        with pytest.raises(error, match=message):
            call()
        return int(tracemalloc.get_traced_memory()[1])
    finally:
        tracemalloc.stop()


def test_labels_far_beyond_the_others_are_damage_not_new_classes(tmp_path: Path) -> None:
    # Digits 0-9 and one label of 200: not a 201-class problem.
    from test_data import write_idx
    from xpnet.data import DatasetError, load_images_labels, load_mnist

    labels = np.arange(50, dtype=np.uint8) % 10
    labels[7] = 200
    images = write_idx(tmp_path / "i-idx3-ubyte", np.zeros((50, 4, 4), np.uint8))
    label_file = write_idx(tmp_path / "l-idx1-ubyte", labels)
    with pytest.raises(
        DatasetError, match="labels up to 200 .* would make 201 classes, 190 of them"
    ):
        load_images_labels(images, label_file)
    assert load_images_labels(images, label_file, num_classes=201).num_classes == 201
    # MNIST has 10 classes, whatever its files say.
    folder = tmp_path / "mnist"
    folder.mkdir()
    write_idx(folder / "t10k-images-idx3-ubyte", np.zeros((50, 28, 28), np.uint8))
    write_idx(folder / "t10k-labels-idx1-ubyte", np.where(labels == 200, 12, labels))
    with pytest.raises(DatasetError, match=r"labels must lie in \[0, 10\)"):
        load_mnist(folder, verify=False)


def test_paths_of_the_wrong_kind_say_what_they_are(tmp_path: Path) -> None:
    from xpnet.data import DatasetError, load_idx, load_mnist

    a_file = tmp_path / "file"
    a_file.write_bytes(b"x")
    with pytest.raises(DatasetError, match="is a file, expected the folder holding MNIST"):
        load_mnist(a_file)
    with pytest.raises(DatasetError, match="is a folder, expected a file"):
        load_idx(tmp_path)


# -- silent: numerics at the edges -------------------------------------------------------------


def test_relu_pullback_at_nan_follows_torch(backend: Any) -> None:
    # torch zeroes relu's gradient only where the output is <= 0: at a NaN it passes.
    torch = pytest.importorskip("torch")
    import xpnet.functional as F
    from helpers import assert_close

    x = np.asarray([-1.0, 0.0, np.nan, 2.0, -np.inf, np.inf])
    dy = np.asarray([1.0, 2.0, 3.0, 4.0, 5.0, 6.0])
    _, pullback = F.vjp(F.relu, backend.asarray(x))
    (got,) = pullback(backend.asarray(dy))
    leaf = torch.tensor(x, requires_grad=True)
    (want,) = torch.autograd.grad(torch.relu(leaf), [leaf], torch.tensor(dy))
    np.testing.assert_array_equal(xpnet.to_numpy(got), want.numpy())
    assert_close(got, [0.0, 0.0, 3.0, 4.0, 0.0, 6.0])


@pytest.mark.parametrize("strategy", ["flat", "strided", "gather"])
@pytest.mark.parametrize("stride", [1, 2])
def test_conv2d_on_an_empty_batch_gives_empty_results_like_torch(
    backend: Any, strategy: str, stride: int
) -> None:
    torch = pytest.importorskip("torch")
    import xpnet.functional as F
    from xpnet import config

    x, w = np.zeros((0, 3, 8, 8)), np.ones((4, 3, 3, 3))
    want = torch.nn.functional.conv2d(torch.tensor(x), torch.tensor(w), padding=1, stride=stride)
    with config.conv_strategy(strategy):
        y, pullback = F.vjp(F.conv2d, backend.asarray(x), backend.asarray(w), None,
                            padding=1, stride=stride)  # fmt: skip
        dx, dw, _ = pullback(backend.asarray(np.zeros(tuple(want.shape))))
    assert tuple(y.shape) == tuple(want.shape) == (0, 4, 8 // stride, 8 // stride)
    assert tuple(dx.shape) == x.shape
    np.testing.assert_array_equal(xpnet.to_numpy(dw), np.zeros(w.shape))  # no images: 0


@pytest.mark.parametrize(("name", "size"), [("lenet5", 28), ("simple_cnn_bn", 8), ("mlp", 8)])
def test_a_model_on_an_empty_batch_gives_an_empty_batch(backend: Any, name: str, size: int) -> None:
    from xpnet import models

    with xpnet.use_backend(backend.name, backend.device):
        model = models.build_model(name, 1, 10, size).eval()
        out = model(backend.asarray(np.zeros((0, 1, size, size)), "float32"))
    assert tuple(out.shape) == (0, 10)


def test_a_degenerate_kernel_is_a_clear_error(backend: Any) -> None:
    import xpnet.functional as F

    x = backend.asarray(np.zeros((1, 3, 5, 5)))
    for shape in [(4, 3, 0, 0), (4, 3, 3, 0), (0, 3, 3, 3)]:
        with pytest.raises(ValueError, match=r"weight: expected at least one output channel"):
            F.conv2d(x, backend.asarray(np.zeros(shape)))


def _npz_with_header(path: Path, shape: tuple[int, ...], payload: bytes) -> Path:
    """An .npz whose 'images' declares ``shape`` (uint8) but holds ``payload``."""
    import io
    import zipfile

    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        header, {"descr": "|u1", "fortran_order": False, "shape": shape}
    )
    labels = io.BytesIO()
    np.save(labels, np.zeros(1, np.int64))
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("images.npy", header.getvalue() + payload)
        archive.writestr("labels.npy", labels.getvalue())
    return path


def test_npz_size_bombs_are_refused_before_allocating(tmp_path: Path) -> None:

    from xpnet.data import DatasetError, load_npz

    # A header declaring 10^12 bytes in an entry of a few: refused before any allocation.
    huge = _npz_with_header(tmp_path / "huge.npz", (10**12,), b"\0" * 16)
    with pytest.raises(DatasetError, match=r"declares shape \(1000000000000,\) of uint8"):
        load_npz(huge)
    # A zip bomb: one image declared, 256 MiB of zeros behind it (256 KiB compressed).
    bomb = _npz_with_header(tmp_path / "bomb.npz", (1, 4, 4), bytes(256 * 2**20))
    assert bomb.stat().st_size < 2**20
    peak = _peak_while_refused(
        lambda: load_npz(bomb), DatasetError, "holds more data than its header declares"
    )
    assert peak < 8 * 2**20, f"decompressed {peak / 2**20:.0f} MiB of a 16-byte array"


def test_truncated_and_bit_flipped_npz_name_the_file(tmp_path: Path) -> None:
    from xpnet.data import DatasetError, load_npz

    good = tmp_path / "good.npz"
    np.savez_compressed(good, images=np.arange(600, dtype=np.uint8).reshape(6, 10, 10),
                        labels=np.arange(6))  # fmt: skip
    data = good.read_bytes()
    truncated = tmp_path / "truncated.npz"
    truncated.write_bytes(data[: len(data) // 2])
    with pytest.raises(DatasetError, match=r"truncated\.npz: not a readable \.npz archive"):
        load_npz(truncated)
    flipped = tmp_path / "flipped.npz"
    middle = len(data) // 3  # inside the compressed images
    flipped.write_bytes(data[:middle] + bytes([data[middle] ^ 0xFF]) + data[middle + 1 :])
    with pytest.raises(DatasetError, match=r"flipped\.npz: (damaged|not a readable)"):
        load_npz(flipped)


# -- the command line, small points ------------------------------------------------------------


def test_feature_maps_are_titled_with_the_architecture() -> None:
    pytest.importorskip("matplotlib")
    from xpnet import models, viz

    model = models.build_model("lenet5", 1, 10, 28)
    fig = viz.plot_feature_maps(model, np.zeros((1, 28, 28), np.float32))
    assert fig._suptitle.get_text() == "feature maps of one input (lenet5)"
    plain = xpnet.nn.Sequential(xpnet.nn.Conv2d(1, 2, 3))
    fig = viz.plot_feature_maps(plain, np.zeros((1, 8, 8), np.float32))
    assert fig._suptitle.get_text() == "feature maps of one input (Sequential)"


def test_one_epoch_is_singular_and_backend_reasons_are_not_double_bracketed(
    capsys: pytest.CaptureFixture[str],
) -> None:
    pytest.importorskip("sklearn")
    status, out, _ = run_main(capsys, "train", "--no-progress", "--epochs", "1")
    assert status == 0 and ", 1 epoch, backend" in out
    status, listing, _ = run_main(capsys, "backends")
    assert status == 0 and "cupy" in listing
    assert "((" not in listing and "))" not in listing


def test_evaluate_and_predict_find_the_training_data_from_any_folder(
    tmp_path: Path, image_files: tuple[Path, Path]
) -> None:
    from test_cli import xpnet as run_xpnet

    images, labels = image_files
    weights = tmp_path / "w.safetensors"
    trained = run_xpnet("train", "--no-progress", "--images", str(images), "--labels",
                        str(labels), "--model", "mlp", "--epochs", "2", "--save", str(weights))  # fmt: skip
    assert trained.returncode == 0, trained.stderr
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    for command in ("evaluate", "predict"):
        result = subprocess.run(
            [sys.executable, "-m", "xpnet", command, str(weights)],
            capture_output=True, text=True, cwd=elsewhere, timeout=120,
            env={**os.environ, "XPNET_BACKEND": "numpy"},
        )  # fmt: skip
        assert result.returncode == 0, result.stderr
    moved = images.rename(tmp_path / "moved-idx3-ubyte.gz")
    result = run_xpnet("evaluate", str(weights))
    assert result.returncode == 2
    assert f"trained on data at {images}, which is no longer there" in result.stderr
    assert run_xpnet("evaluate", str(weights), "--images", str(moved), "--labels",
                     str(labels)).returncode == 0  # fmt: skip


def test_evaluate_finds_mnist_where_training_did(tmp_path: Path) -> None:
    from test_cli import xpnet as run_xpnet

    folder = xpnet.data.find_mnist()
    if folder is None or not Path(folder).is_dir():
        pytest.skip("MNIST not found: set XPNET_MNIST_DIR or place it in ../shared/data/mnist")
    weights = tmp_path / "m.safetensors"
    trained = run_xpnet("train", "--no-progress", "--data-dir", str(folder), "--model", "mlp",
                        "--epochs", "1", "--save", str(weights))  # fmt: skip
    assert trained.returncode == 0, trained.stderr
    result = subprocess.run(
        [sys.executable, "-m", "xpnet", "evaluate", str(weights)],
        capture_output=True, text=True, cwd=tmp_path, timeout=120,
        env={k: v for k, v in os.environ.items() if k != "XPNET_MNIST_DIR"} | {"XPNET_BACKEND": "numpy"},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "images: 2000" in result.stdout or "images: 10000" in result.stdout


EMPTY_OPS = [
    # name, xpnet op on (x,), torch op on (t,)
    ("max_pool2d", lambda F, a: F.max_pool2d(a, 2), lambda tf, t: tf.max_pool2d(t, 2)),
    ("avg_pool2d", lambda F, a: F.avg_pool2d(a, 2), lambda tf, t: tf.avg_pool2d(t, 2)),
    (
        "adaptive_avg_pool2d",
        lambda F, a: F.adaptive_avg_pool2d(a, (2, 2)),
        lambda tf, t: tf.adaptive_avg_pool2d(t, (2, 2)),
    ),
    ("relu", lambda F, a: F.relu(a), lambda tf, t: tf.relu(t)),
    ("gelu", lambda F, a: F.gelu(a), lambda tf, t: tf.gelu(t)),
    ("log_softmax", lambda F, a: F.log_softmax(a, 1), lambda tf, t: tf.log_softmax(t, 1)),
    ("flatten", lambda F, a: F.flatten(a, 1), lambda tf, t: t.flatten(1)),
    (
        "batch_norm, training",
        lambda F, a: F.batch_norm(a, None, None, training=True)[0],
        lambda tf, t: tf.batch_norm(t, None, None, training=True),
    ),
]


@pytest.mark.parametrize(("name", "ours", "theirs"), EMPTY_OPS, ids=[c[0] for c in EMPTY_OPS])
def test_every_op_takes_an_empty_batch_like_torch(
    backend: Any, name: str, ours: Any, theirs: Any
) -> None:
    torch = pytest.importorskip("torch")
    import xpnet.functional as F

    x = np.zeros((0, 3, 8, 8))
    want = theirs(torch.nn.functional, torch.tensor(x))
    y = ours(F, backend.asarray(x))
    assert tuple(y.shape) == tuple(want.shape)


def test_batch_norm_on_an_empty_training_batch_keeps_its_statistics(backend: Any) -> None:
    import xpnet.functional as F

    mean, var = backend.asarray(np.asarray([0.5, 1.0])), backend.asarray(np.asarray([2.0, 3.0]))
    weight, bias = backend.asarray(np.ones(2)), backend.asarray(np.zeros(2))
    x = backend.asarray(np.zeros((0, 2, 4, 4)))
    (y, new_mean, new_var), pullback = F.vjp(F.batch_norm, x, mean, var, weight, bias, True)
    assert tuple(y.shape) == (0, 2, 4, 4)
    np.testing.assert_array_equal(xpnet.to_numpy(new_mean), [0.5, 1.0])  # as torch leaves them
    np.testing.assert_array_equal(xpnet.to_numpy(new_var), [2.0, 3.0])
    dx, _, _, dweight, dbias, _ = pullback(backend.asarray(np.zeros((0, 2, 4, 4))))
    assert tuple(dx.shape) == (0, 2, 4, 4)
    np.testing.assert_array_equal(xpnet.to_numpy(dweight), [0.0, 0.0])
    np.testing.assert_array_equal(xpnet.to_numpy(dbias), [0.0, 0.0])


# -- hostile ONNX files ----------------------------------------------------------------------


def test_hostile_onnx_files_get_clear_errors_and_flips_never_a_traceback(tmp_path: Path) -> None:
    # An ONNX file is untrusted input, like a checkpoint: truncated, an oversized dimension,
    # external data that leaves the model's folder, and a cycle are each an OnnxImportError
    # naming what; a byte flipped anywhere either loads a model that runs, or is one too.
    onnx = pytest.importorskip("onnx", reason="the onnx extra is not installed")
    from onnx import TensorProto, helper

    import xpnet.onnx as xo

    with xpnet.use_backend("numpy"):
        model = xpnet.models.build_model("lenet5", 1, 10, 28)
        good = xo.export(model, xpnet.asarray(np.zeros((1, 1, 28, 28), np.float32)))
    data = good.SerializeToString()
    path = tmp_path / "m.onnx"
    path.write_bytes(data[: len(data) // 3])
    with pytest.raises(xo.OnnxImportError, match=f"{re.escape(str(path))}.*not an ONNX model"):
        xo.load(path)

    huge = onnx.ModelProto()
    huge.CopyFrom(good)
    weight = huge.graph.initializer[0]
    weight.dims[0] = 2**62
    with pytest.raises(xo.OnnxImportError, match=f"'{weight.name}'.*more than"):
        xo.load(huge)

    escape = onnx.ModelProto()
    escape.CopyFrom(good)
    tensor = escape.graph.initializer[0]
    tensor.ClearField("raw_data")
    tensor.data_location = TensorProto.EXTERNAL
    tensor.external_data.add(key="location", value="../../etc/passwd")
    (tmp_path / "models").mkdir()
    escaping = tmp_path / "models" / "escape.onnx"
    escaping.write_bytes(escape.SerializeToString())
    with pytest.raises(xo.OnnxImportError, match="external data") as caught:
        xo.load(escaping)
    assert "../../etc/passwd" in str(caught.value)

    cyclic = helper.make_graph(
        [helper.make_node("Relu", ["b"], ["a"]), helper.make_node("Neg", ["a"], ["b"])],
        "cycle", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])],
        [helper.make_tensor_value_info("a", TensorProto.FLOAT, [2])],
    )  # fmt: skip
    with pytest.raises(xo.OnnxImportError, match="topologically sorted.*'b'"):
        xo.load(helper.make_model(cyclic, opset_imports=[helper.make_opsetid("", 17)]))

    from onnx import numpy_helper

    with xpnet.use_backend("numpy"):  # a batch norm whose variance went negative
        normed = xo.export(xpnet.nn.Sequential(xpnet.nn.BatchNorm2d(2)).eval(),
                           xpnet.asarray(np.zeros((1, 2, 4, 4), np.float32)))  # fmt: skip
    node = next(n for n in normed.graph.node if n.op_type == "BatchNormalization")
    variance = next(t for t in normed.graph.initializer if t.name == node.input[4])
    variance.CopyFrom(numpy_helper.from_array(np.array([1.0, -1.0], np.float32), variance.name))
    with pytest.raises(xo.OnnxImportError, match=f"'{variance.name}' holds negative values"):
        xo.load(normed)

    rng = np.random.default_rng(0)
    x = np.random.default_rng(1).standard_normal((1, 1, 28, 28)).astype(np.float32)
    outcomes = {"refused": 0, "failed naming the node": 0, "ran": 0}
    refusals: list[str] = []
    failures: list[str] = []
    # The graph's structure: its nodes and attributes come first, its inputs, outputs and
    # opsets last (a flip in the weights' bytes loads other weights, as in any ONNX runtime).
    structure = [*range(0, 1500), *range(len(data) - 600, len(data))]
    for _ in range(300):
        flipped = bytearray(data)
        spot = structure[int(rng.integers(len(structure)))]
        flipped[spot] ^= 1 << int(rng.integers(8))
        with xpnet.use_backend("numpy"):
            try:
                loaded = xo.load(bytes(flipped))
            except xo.OnnxImportError as exc:
                refusals.append(str(exc))
                outcomes["refused"] += 1
                continue
            try:  # a valid graph whose shapes no longer fit: named at the node
                y = loaded(xpnet.asarray(x))
            except ValueError as exc:
                failures.append(str(exc))
                outcomes["failed naming the node"] += 1
                continue
        assert np.asarray(xpnet.to_numpy(y)).shape[0] == 1
        outcomes["ran"] += 1
    assert all(outcomes.values()), outcomes  # each kind of flip was met
    assert all(message.startswith("<bytes>: ") for message in refusals), refusals
    assert all(re.match(r"<bytes>: node \d+ '.*' \(\w+\): ", m) for m in failures), failures


# -- one set of bounds, where options are parsed and where checkpoints are read --------------


def test_what_a_run_accepts_its_checkpoint_accepts(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], good_checkpoint: Path
) -> None:
    # Each number a checkpoint keeps is bounded once (xpnet._limits): an option beyond its
    # bound is refused before training, with the bound the checkpoint reader applies, so
    # no run saves what evaluate or --resume would then refuse.
    from xpnet._limits import INT_BOUNDS
    from xpnet.cli import main as xpnet_cli_main

    options = {"batch_size": "--batch-size", "epochs": "--epochs", "seed": "--seed",
               "num_classes": "--num-classes", "image_size": "--image-size",
               "workers": "--workers"}  # fmt: skip
    for name, option in options.items():
        low, high = INT_BOUNDS[name]
        for value in (high + 1, low - 1):
            with pytest.raises(SystemExit) as stopped:  # argparse's usage error
                xpnet_cli_main(["train", option, str(value)])
            assert stopped.value.code == 2
            err = capsys.readouterr().err
            assert f"{option}: expected an integer from {low} to {high}, got '{value}'" in err
    # The reader applies the same bounds to the fields it finds.
    for field, value in [("settings.batch_size", 10**7 + 1), ("settings.seed", 2**64),
                         ("settings.epochs", 10**10), ("num_classes", 10**6 + 1)]:  # fmt: skip
        bad = _rewrite(good_checkpoint, tmp_path / "bad.safetensors",
                       meta=lambda m, f=field, v=value: _set(m, f, v))  # fmt: skip
        name = field.rpartition(".")[2]
        low, high = INT_BOUNDS[name]
        with pytest.raises(CheckpointError, match=f"{field} should be an integer from {low} "
                                                  f"to {high}, found {value}"):  # fmt: skip
            load_checkpoint(bad)
    # And the product: every side within its bound, the image too large for a model.
    big = _rewrite(
        good_checkpoint,
        tmp_path / "big.safetensors",
        meta=lambda m: {**m, "model": "mlp", "in_channels": 4096, "image_size": 4096},
    )
    with pytest.raises(CheckpointError, match=r"4096 x 4096 x 4096 = 68,719,476,736 values"):
        load_checkpoint(big)
    with pytest.raises(ValueError, match="more than the 4,194,304 a model is built for"):
        xpnet.models.build_model("mlp", 3, 10, 2048)
    # Every command checks its options before its work: bench's backend, device and batch,
    # and a --plots that names no folder.
    for args, words in [
        (["bench", "--backend", "bogus"], "unknown backend 'bogus'; known backends:"),
        (["bench", "--count", "--device", "cuda:0"], "the numpy backend only has device 'cpu'"),
        (["train", "--plots", ""], "--plots: expected a folder, got ''"),
    ]:  # fmt: skip
        status, _, err = run_main(capsys, *args)
        assert status == 2 and words in err and "Traceback" not in err, err
    with pytest.raises(SystemExit):
        xpnet_cli_main(["bench", "--count", "--batch", str(10**12)])
    assert "--batch: expected an integer from 1 to 10000000" in capsys.readouterr().err


def test_an_interrupted_run_says_truly_what_its_checkpoint_holds(
    tmp_path: Path, good_checkpoint: Path
) -> None:
    import argparse

    from xpnet.cli import _what_was_kept

    def kept(path: Path) -> str:
        return _what_was_kept(argparse.Namespace(command="train", save=str(path)))

    assert "nothing was saved" in kept(tmp_path / "absent.safetensors")
    assert "holds epoch 1" in kept(good_checkpoint)
    damaged = tmp_path / "damaged.safetensors"
    damaged.write_bytes(good_checkpoint.read_bytes()[:-10])
    assert kept(damaged).startswith(f"{damaged} exists but cannot be loaded: {damaged}: ")


def test_the_python_api_takes_what_torch_takes_and_names_what_it_refuses() -> None:
    # NumPy's scalars (and 0-d tensors) are numbers, as torch takes them; a state_dict is a
    # mapping; bfloat16 widens as torch copies it; complex and NaN values are refused by key;
    # rates are finite and counts whole, in a constructor or a loaded state, and data hold
    # finite pixels and integer labels.
    from xpnet import nn

    with xpnet.use_backend("numpy"):
        conv = nn.Conv2d(np.int64(1), 2, 3, stride=np.int64(2), padding=np.int32(1))
        assert (conv.in_channels, conv.stride, conv.padding) == (1, (2, 2), (1, 1))
        assert type(conv.in_channels) is int
        opt = optim.SGD(conv, lr=np.float32(0.25), momentum=np.float64(0.5))
        assert opt.defaults["lr"] == 0.25 and type(opt.defaults["lr"]) is float
        from xpnet import functional as F

        x = xpnet.asarray(np.arange(16.0).reshape(1, 4, 2, 2))
        expected = [xpnet.to_numpy(f(x)) for f in (lambda v: F.softmax(v, dim=1),
                    lambda v: F.group_norm(v, 2), lambda v: F.adaptive_avg_pool2d(v, 1),
                    lambda v: F.flatten(v, 1))]  # fmt: skip
        given = [xpnet.to_numpy(f(x)) for f in (lambda v: F.softmax(v, dim=np.int64(1)),
                 lambda v: F.group_norm(v, np.int32(2)), lambda v: F.adaptive_avg_pool2d(v, np.int64(1)),
                 lambda v: F.flatten(v, np.int64(1)))]  # fmt: skip
        for one, other in zip(expected, given, strict=True):
            np.testing.assert_array_equal(one, other)
        with pytest.raises(TypeError, match=r"dim: expected an int, got float64"):
            F.softmax(x, dim=np.float64(1))
        model = xpnet.models.lenet5(rng=0)
        for bad in ([1, 2], "abc", None):
            with pytest.raises(TypeError, match="state: expected a mapping of parameter names"):
                model.load_state_dict(bad)  # type: ignore[arg-type]
        state = {k: np.asarray(xpnet.to_numpy(v)) for k, v in model.state_dict().items()}
        for changed, words in [(lambda a: a.astype(np.complex64), "0.weight: complex values"),
                               (lambda a: a * np.nan, "0.weight: holds NaN"),
                               (lambda a: a + np.inf, "0.weight: holds infinite values")]:  # fmt: skip
            with pytest.raises(ValueError, match=words):
                model.load_state_dict({k: changed(v) for k, v in state.items()})
        # Rates and counts: finite numbers, whole counts, as the constructors take them.
        for rate in (float("inf"), float("nan"), -1.0):
            with pytest.raises(ValueError, match=re.escape(f"lr: expected a finite number >= 0, got {rate!r}")):  # fmt: skip
                optim.Adam(model, lr=rate)
        adam = optim.Adam(model)
        adam.step({name: param * 0 for name, param in model.named_parameters()})
        saved = adam.state_dict()
        for key, value, words in [
            ("lr", float("inf"), "lr: expected a finite number >= 0, got inf"),
            ("param_groups", float("nan"), "'param_groups': expected a whole number of parameter groups, got nan"),
            ("param_groups", float("inf"), "'param_groups': expected a whole number of parameter groups, got inf"),
            ("step", 2.5, "'step': expected a whole count from 0 to 2**63 - 1, got 2.5"),
        ]:  # fmt: skip
            with pytest.raises(ValueError, match=re.escape(words)):
                optim.Adam(model).load_state_dict({**saved, key: value})
        adam.load_state_dict({**saved, "step": np.int64(5), "param_groups": np.int64(1)})
        assert adam.step_count == 5 and type(adam.step_count) is int
        schedule = optim.StepLR(adam, step_size=np.int64(2))
        for key, value, words in [
            ("last_lrs", [float("nan")], "'last_lrs': expected finite numbers >= 0, got [nan]"),
            ("last_lrs", [0.1, 0.1], "'last_lrs': expected 1 rate (one per parameter group)"),
            ("base_lrs", [-1.0], "'base_lrs': expected finite numbers >= 0, got [-1.0]"),
            ("last_epoch", -5, "'last_epoch': expected a whole number >= 0, got -5"),
            ("last_epoch", 2.5, "'last_epoch': expected a whole number >= 0, got 2.5"),
        ]:  # fmt: skip
            with pytest.raises(ValueError, match=re.escape(words)):
                optim.StepLR(optim.Adam(model), 2).load_state_dict(
                    {**schedule.state_dict(), key: value}
                )
        kept_epoch_only = {"base_lr": 0.001, "last_epoch": 10**12}  # nothing to jump by
        with pytest.raises(ValueError, match="1000000000000 epochs to replay"):
            optim.StepLR(optim.Adam(model), 2).load_state_dict(kept_epoch_only)
        # Data: NumPy's integers count, NaN pixels and fractional labels do not.
        images = np.zeros((4, 1, 8, 8), np.float32)
        loader = xpnet.data.DataLoader(
            xpnet.data.Dataset(images, np.arange(4), 4), batch_size=np.int64(2)
        )
        assert len(loader) == 2 and type(loader.batch_size) is int
        for bad_seed in (-1, 2.0, "0"):
            with pytest.raises(ValueError, match="seed: expected an int from 0 to 2"):
                xpnet.data.DataLoader(loader.dataset, shuffle=True, seed=bad_seed)
        for bad_images, labels, words in [
            (images * np.nan, np.arange(4), "images hold NaN or infinite pixel values"),
            (images.astype(np.int32), np.arange(4), "images must be uint8 (0-255) or floating point, got int32"),
            (images, np.arange(4) + 0.5, "labels must be integer class indices, got float64"),
        ]:  # fmt: skip
            with pytest.raises(xpnet.data.DatasetError, match=re.escape(words)):
                xpnet.data.Dataset(bad_images, labels, 4)
        # What is not what it should be at all is named as such, not met deep inside.
        conv_input = xpnet.asarray(np.zeros((1, 1, 3, 3)))
        for call, kind, words in [
            (lambda: F.relu(None), TypeError, "input: expected an array, got None"),
            (lambda: F.conv2d(conv_input, None), TypeError, "weight: expected an array, got NoneType"),
            (lambda: F.interpolate(conv_input, scale_factor=float("nan")), ValueError,
             "scale_factor: expected positive finite values, got nan"),
            (lambda: optim.Adam(model).load_state_dict(None), TypeError, "state: expected the mapping"),
            (lambda: optim.Adam(model).load_state_dict({}), ValueError, "optimizer state is empty"),
            (lambda: optim.StepLR(optim.Adam(model), 2).load_state_dict(None), TypeError,
             "state: expected the mapping the scheduler's state_dict() returns, got NoneType"),
            (lambda: optim.MultiStepLR(optim.Adam(model), None), TypeError,
             "milestones: expected a sequence of ints, got None"),
            (lambda: xpnet.data.DataLoader(None), TypeError, "dataset: expected an xpnet.data.Dataset"),
            (lambda: xpnet.data.DataLoader(loader.dataset, shuffle="no"), TypeError,
             "shuffle: expected True or False, got 'no'"),
            (lambda: xpnet.data.DataLoader(loader.dataset, transform=lambda x: x), TypeError,
             "transform: must take a keyword rng"),
            (lambda: xpnet.data.Dataset(images, np.arange(4), 4, first_index=-5),
             xpnet.data.DatasetError, "first_index must be a whole number >= 0, got -5"),
            (lambda: xpnet.data.Dataset(images[:, :, :0, :0], np.arange(4), 4),
             xpnet.data.DatasetError, "images are 0x0; expected at least 1x1"),
            (lambda: nn.Dropout(p=True), ValueError, "p: expected a probability in [0, 1], got True"),
            (lambda: model.load_state_dict({**state, 0: state["0.weight"]}), TypeError,
             "its keys must be parameter names (strings), got 0 (int)"),
            (lambda: model.load_state_dict({**state, "0.bias": np.array([None] * 6)}), TypeError,
             "0.bias: expected an array of numbers, got an object array"),
        ]:  # fmt: skip
            with pytest.raises(kind, match=re.escape(words)):
                call()
        norm = nn.BatchNorm2d(2)
        buffers = {k: np.asarray(xpnet.to_numpy(v)) for k, v in norm.state_dict().items()}
        with pytest.raises(ValueError, match="running_var: holds negative variances"):
            norm.load_state_dict({**buffers, "running_var": np.array([1.0, -1.0])})
        # NumPy's numbers where an int or a float is asked for, across the functional API.
        labels = xpnet.asarray(np.array([0, 2]))
        np.testing.assert_array_equal(xpnet.to_numpy(F.one_hot(labels, np.int64(3))),
                                      xpnet.to_numpy(F.one_hot(labels, 3)))  # fmt: skip
        np.testing.assert_array_equal(xpnet.to_numpy(F.pad(x, (np.int64(1),) * 4)),
                                      xpnet.to_numpy(F.pad(x, (1,) * 4)))  # fmt: skip
        logits = xpnet.asarray(np.array([[1.0, 2.0, 0.5], [0.1, 0.2, 3.0]]))
        assert float(F.cross_entropy(logits, labels, label_smoothing=np.float32(0.25))) == \
            pytest.approx(float(F.cross_entropy(logits, labels, label_smoothing=0.25)))  # fmt: skip
        torch = pytest.importorskip("torch")
        half = {k: torch.from_numpy(v).to(torch.bfloat16) for k, v in state.items()}
        model.load_state_dict(half)
        expected = half["0.weight"].float().numpy()
        np.testing.assert_array_equal(xpnet.to_numpy(model.state_dict()["0.weight"]), expected)
        tensor_rate = optim.Adam(model, lr=torch.tensor(0.01))  # as torch takes it
        assert tensor_rate.defaults["lr"] == pytest.approx(0.01)


RESUME_DAMAGE: list[tuple[str, dict[str, Any], str]] = [
    ("maximize set", {"metadata_optimizer": {"maximize": True}},
     "optimizer option maximize is True, but xpnet train sets it to False"),
    ("scheduler far ahead", {"meta": lambda m: _set(m, "scheduler.last_epoch", 10**12)},
     "scheduler.last_epoch should be 1 (the steps taken by epoch 1), found 1000000000000"),
    ("scheduler behind", {"meta": lambda m: _set(m, "scheduler.last_epoch", -7)},
     "scheduler.last_epoch should be 1"),
    ("scheduler step a word", {"meta": lambda m: _set(m, "scheduler.last_epoch", "x")},
     "scheduler.last_epoch should be 1 (the steps taken by epoch 1), found 'x'"),
    ("negative base rate", {"meta": lambda m: _set(m, "scheduler.base_lrs", [-1.0])},
     "scheduler.base_lrs should list finite rates >= 0, found [-1.0]"),
    ("a list as a rate", {"meta": lambda m: _set(m, "scheduler.base_lrs", [[1]])},
     "scheduler.base_lrs should list finite rates >= 0"),
    ("negative last rate", {"meta": lambda m: _set(m, "scheduler.last_lrs", [-5.0])},
     "scheduler.last_lrs should list finite rates >= 0"),
    ("random state a word", {"meta": lambda m: _set(m, "rng", {"global": "abc"})},
     "rng.global should be a table with ['bit_generator', 'has_uint32', 'state', 'uinteger'],"
     " found 'abc' (a PCG64 state)"),
    ("random state negative", {"meta": lambda m: _set(m, "rng.global.state.inc", -1)},
     "rng.global.state.inc should be a whole number from 0 to 2**128, found -1"),
    ("another generator", {"meta": lambda m: _set(m, "rng.global.bit_generator", "MT19937")},
     "rng.global.bit_generator should be 'PCG64', found 'MT19937'"),
    ("history not numbers", {"meta": lambda m: _set(m, "history", [{"loss": "x"}])},
     "history[0].loss should be a number, found 'x'"),
    ("second moments negative", {"tensors": lambda a: {
        k: -np.abs(v) - 1 for k, v in a.items() if k.endswith("exp_avg_sq")}},
     "exp_avg_sq': holds negative values"),
    ("a step count negative", {"metadata_optimizer": {"state.0.weight.step": -5}},
     "'state.0.weight.step': expected a whole step count from 0 to the optimizer's"),
    ("a step count fractional", {"metadata_optimizer": {"state.0.weight.step": 2.7}},
     "steps, got 2.7"),
    ("a step count beyond the run's", {"metadata_optimizer": {"state.0.weight.step": 1e308}},
     "steps, got 1e+308"),
    ("a step count missing", {"metadata_optimizer": {"state.0.weight.step": None}},
     "steps, got None"),
    ("a step count a word", {"metadata_optimizer": {"state.0.weight.step": "x"}},
     "steps, got 'x'"),
    ("groups infinite", {"metadata_optimizer": {"param_groups": float("inf")}},
     "'param_groups': expected a whole number of parameter groups, got inf"),
    ("groups a fraction", {"metadata_optimizer": {"param_groups": 1.5}},
     "'param_groups': expected a whole number of parameter groups, got 1.5"),
    ("an infinite rate", {"metadata_optimizer": {"lr": float("inf")}},
     "lr: expected a finite number >= 0, got inf"),
    ("an unknown model", {"meta": lambda m: _set(m, "settings.model", "bogus")},
     "settings.model is 'bogus', which xpnet train does not know"),
    ("an unknown optimizer", {"meta": lambda m: _set(m, "settings.optimizer", "bogus")},
     "settings.optimizer is 'bogus', which xpnet train does not know"),
    ("an unknown schedule", {"meta": lambda m: _set(m, "settings.schedule", "weird")},
     "settings.schedule is 'weird', which xpnet train does not know"),
    ("two models", {"meta": lambda m: _set(m, "settings.model", "mlp")},
     "but settings.model 'mlp'"),
    ("inputs made infinite", {"meta": lambda m: _set(m, "normalisation", [1e30, 1e-30])},
     "normalisation should be [mean, std] (numbers, or lists of one per channel) with "
     "|mean| <= 1e6 and std from 1e-6 to 1e6, found [1e+30, 1e-30]"),
    ("a fraction of an image", {"meta": lambda m: _set(m, "test_size", 0.5)},
     "test_size should be a number of images or null, found 0.5"),
    ("a rate its schedule never set", {"metadata_optimizer": {"lr": 0.5}},
     "optimizer option lr is 0.5, but its schedule (cosine) left 0.0"),
    ("a key given twice", {"metadata": {"optimizer": '{"step": 23, "lr": 0.01, "lr": 5}'}},
     "metadata field 'optimizer' gives 'lr' twice"),
    ("a field xpnet never writes", {"metadata": {"digesu": "{}"}},
     "metadata field 'digesu' is not one xpnet writes"),
]  # fmt: skip


@pytest.mark.parametrize(("case", "damage", "message"), RESUME_DAMAGE,
                         ids=[c[0] for c in RESUME_DAMAGE])  # fmt: skip
def test_resume_checks_the_whole_training_state_before_training(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    good_checkpoint: Path,
    case: str,
    damage: dict[str, Any],
    message: str,
) -> None:
    # What a resumed run takes from its checkpoint (optimizer options and moments, the
    # schedule, the random state, the history) is checked against the rules its makers
    # apply, naming the file and the field, before a step: never trained on as found.
    import json

    scalars = damage.pop("metadata_optimizer", None)
    if scalars is not None:
        header, _ = _header_and_data(good_checkpoint.read_bytes())
        table = json.loads(header["__metadata__"]["optimizer"])
        damage["metadata"] = {"optimizer": json.dumps({**table, **scalars})}
    bad = _rewrite(good_checkpoint, tmp_path / "bad.safetensors", **damage)
    before = bad.read_bytes()
    status, out, err = run_main(capsys, "train", "--no-progress", "--resume", "--save", str(bad))
    assert status == 2 and message in err and str(bad) in err, err
    assert "epoch 2" not in out and err.count("\n") == 1
    assert bad.read_bytes() == before  # nothing saved over it


def test_checkpoint_and_data_paths_are_resolved_once_and_must_be_regular_files(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # A path that is not a regular file (a FIFO, a device behind a link) is refused, named
    # as what it is, and left as it was; a link to a checkpoint is written through, and
    # two runs reaching one file by different links hold one lock.
    from xpnet import data
    from xpnet.train._guard import CheckpointLock, resolved

    fifo = tmp_path / "fifo.safetensors"
    os.mkfifo(fifo)
    null = tmp_path / "null.safetensors"
    null.symlink_to(os.devnull)
    for path, kind in [(fifo, "a FIFO (named pipe)"), (null, "a character device")]:
        for extra in (["--resume"], ["--overwrite"], []):
            status, out, err = run_main(capsys, "train", "--no-progress", "--epochs", "1",
                                        "--save", str(path), *extra)  # fmt: skip
            assert status == 2 and f"is {kind}, not a checkpoint file" in err, err
            assert "epoch 1" not in out
        with pytest.raises(CheckpointError, match=re.escape(f"is {kind}")):
            _fit(path, overwrite=True)
    assert fifo.is_fifo() and null.is_symlink() and Path(os.devnull).is_char_device()

    real = tmp_path / "runs" / "real.safetensors"
    real.parent.mkdir()
    link, other = tmp_path / "link.safetensors", tmp_path / "other.safetensors"
    link.symlink_to(real)
    other.symlink_to(real)
    _fit(link)  # written through the link: the link stays, the file behind it is made
    assert link.is_symlink() and real.is_file() and load_checkpoint(link).meta["epoch"] == 1
    with CheckpointLock(resolved(other)), pytest.raises(CheckpointError, match="in use"):
        _fit(link, resume=True, epochs=2)
    long_name = tmp_path / ("x" * 240 + ".safetensors")  # 252 bytes: its sidecars fit too
    _fit(long_name)
    assert load_checkpoint(long_name).meta["epoch"] == 1
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []
    too_long = tmp_path / ("x" * 300 + ".safetensors")  # past any file system's limit
    with pytest.raises(CheckpointError, match=r"cannot be used as a checkpoint \(File name too long\)"):  # fmt: skip
        _fit(too_long)

    # Every writer (checkpoints, ONNX files, downloads, figures) writes regular files only:
    # a FIFO or a device (as root, /dev/full itself) is refused and left as it was.
    status, _, err = run_main(capsys, "export", str(link), str(fifo), "--overwrite")
    assert status == 2 and f"{fifo} is a FIFO (named pipe); name the .onnx file" in err, err
    for target, kind in [(fifo, "a FIFO (named pipe)"), (null, "a character device")]:
        with pytest.raises(_atomic.NotARegularFileError, match=re.escape(f"is {kind}; xpnet")):
            with _atomic.replacing(target) as stream:
                stream.write(b"never")
    assert fifo.is_fifo() and null.is_symlink() and Path(os.devnull).is_char_device()
    loop = tmp_path / "loop"
    loop.symlink_to(loop)
    with pytest.raises(data.DatasetError, match=r"loop: cannot be read \(Too many levels"):
        data.load_image_folder(loop)

    # An output that is an input, by any path to it, is refused: it would be gone.
    status, _, err = run_main(capsys, "export", str(link), str(real), "--overwrite")
    assert status == 2 and f"{real} is the checkpoint being exported ({link})" in err, err
    assert load_checkpoint(real).meta["epoch"] == 1
    images = tmp_path / "images-idx3-ubyte"
    images.write_bytes(b"not read")
    status, _, err = run_main(capsys, "train", "--images", str(images), "--labels",
                              str(images), "--save", str(images), "--overwrite")  # fmt: skip
    assert status == 2 and f"--save: {images} is the --images file" in err, err
    assert images.read_bytes() == b"not read"

    zero = tmp_path / "zero-images-idx3-ubyte"
    zero.symlink_to("/dev/zero")
    for path, kind in [(fifo, "a FIFO (named pipe)"), (zero, "a character device")]:
        with pytest.raises(data.DatasetError, match=re.escape(f"{path}: is {kind}, expected")):
            data.load_idx(path)
        with pytest.raises(data.DatasetError, match=re.escape(f"is {kind}")):
            data.load_npz(path)


def test_data_files_are_checked_as_data_before_a_model_sees_them(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Pixels and labels are checked where they are read: non-finite pixels, a label that
    # would invent a million classes, a member standing in for another, members xpnet
    # cannot decompress, IDX sizes too large to hold, and non-square images.
    import zipfile

    from xpnet import data

    rng = np.random.default_rng(0)
    images = rng.random((6, 1, 4, 4)).astype(np.float32)
    labels = np.arange(6) % 3

    def npz(name: str, **arrays: Any) -> Path:
        path = tmp_path / name
        np.savez(path, **arrays)
        return path

    bad = images.copy()
    bad[2, 0, 1, 1] = np.nan
    for path, words in [
        (npz("nan.npz", images=bad, labels=labels), "'images' holds NaN or infinite pixel"),
        (npz("huge.npz", images=images, labels=np.where(labels == 2, 10**12, labels)),
         "labels reach 1000000000000, which would make 1,000,000,000,001 classes"),
        (npz("backup.npz", **{"backup/images": images, "labels": labels}),
         "no array named 'images' (it has ['backup/images', 'labels'])"),
    ]:  # fmt: skip
        with pytest.raises(data.DatasetError, match=re.escape(f"{path}: {words}")):
            data.load_npz(path)
    both = npz("both.npz", **{"images": images, "backup/images": images * 0, "labels": labels})
    np.testing.assert_array_equal(data.load_npz(both).images, images)  # the named one

    odd = tmp_path / "bzip.npz"  # a member compressed with a method zipfile cannot read
    with zipfile.ZipFile(odd, "w") as archive:
        archive.writestr("images.npy", b"\x93NUMPY")
        archive.writestr("labels.npy", b"\x93NUMPY")
    raw = bytearray(odd.read_bytes())
    for spot in range(len(raw) - 1):  # compression method 0 -> 99 in every header
        if raw[spot : spot + 4] in (b"PK\x03\x04", b"PK\x01\x02"):
            at = spot + (8 if raw[spot + 2] == 3 else 10)
            raw[at] = 99
    odd.write_bytes(bytes(raw))
    with pytest.raises(data.DatasetError, match=re.escape(f"{odd}: ")):
        data.load_npz(odd)

    idx = tmp_path / "huge-images-idx3-ubyte"
    idx.write_bytes(b"\x00\x00\x08\x03" + b"".join(n.to_bytes(4, "big") for n in
                                                (4, 2**31, 2**31)) + b"\x00" * 16)  # fmt: skip
    with pytest.raises(
        data.DatasetError,
        match=re.escape(f"{idx}: truncated: 32 bytes, header (4, 2147483648, 2147483648) needs"),
    ):
        data.load_idx(idx)
    with pytest.raises(ValueError, match="mean: expected finite numbers"):
        data.DataLoader(data.load_npz(both), mean=float("inf"))

    wide, wide_labels = tmp_path / "wide-images-idx3-ubyte", tmp_path / "wide-labels-idx1-ubyte"
    wide.write_bytes(b"\x00\x00\x08\x03" + b"".join(n.to_bytes(4, "big") for n in (40, 6, 8))
                     + bytes(40 * 6 * 8))  # fmt: skip
    wide_labels.write_bytes(b"\x00\x00\x08\x01" + (40).to_bytes(4, "big") + bytes(range(40)))
    status, _, err = run_main(capsys, "train", "--no-progress", "--images", str(wide),
                                "--labels", str(wide_labels), "--num-classes", "40")  # fmt: skip
    assert status == 2 and "images are 6x8; the models take square images" in err, err
