"""The ``xpnet`` command: as a subprocess (``python -m xpnet``) for the main paths and
signals, in-process through :func:`xpnet.cli.main` for the many error cases."""

from __future__ import annotations

import importlib.util
import os
import re
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from test_data import write_idx
from xpnet import cli, data
from xpnet.train import load_checkpoint
from xpnet.train import loop as loop_module

ROOT = Path(__file__).resolve().parent.parent
ACCURACY = re.compile(r"^test accuracy: (0\.\d{4}|1\.0000)$", re.MULTILINE)


def xpnet(*args: str, timeout: float = 120, **env: str) -> subprocess.CompletedProcess[str]:
    environment = {**os.environ, "XPNET_BACKEND": "numpy", **env}
    environment.pop("XPNET_DEBUG", None)
    return subprocess.run(
        [sys.executable, "-m", "xpnet", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
        env=environment,
        check=False,
    )


def run_main(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    status = cli.main(list(args))
    out, err = capsys.readouterr()
    return status, out, err


def accuracy(text: str) -> float:
    found = ACCURACY.findall(text)
    assert found, text
    return float(found[-1])


# -- subprocess: the real command line ---------------------------------------------------------


def test_backends_command() -> None:
    result = xpnet("backends")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert any(re.match(r"^numpy\s+available\s+devices: cpu", line) for line in lines)
    names = {line.split()[0] for line in lines}
    assert {"numpy", "torch", "jax", "cupy", "array_api_strict"} <= names
    cupy = next(line for line in lines if line.startswith("cupy"))
    if "unavailable" in cupy:
        assert "pip install" in cupy or "no usable GPU" in cupy


def test_train_evaluate_predict_on_digits(tmp_path: Path) -> None:
    pytest.importorskip("sklearn")
    weights = tmp_path / "digits.safetensors"
    result = xpnet("train", "--epochs", "2", "--save", str(weights))
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert (
        "training simple_cnn_bn on digits (1437 train / 360 test images) with adam, lr 0.01" in out
    )
    assert re.search(r"^epoch 1/2: loss \d\.\d{4}, accuracy", out, re.MULTILINE)
    assert re.search(r"^epoch 2/2: .*test accuracy \d\.\d{4}, [\d,]+ images/s", out, re.MULTILINE)
    trained = accuracy(out)
    assert trained > 0.8
    meta = load_checkpoint(weights).meta
    assert meta["epoch"] == 2 and meta["model"] == "simple_cnn_bn" and meta["source"] == "digits"

    result = xpnet("evaluate", str(weights))
    assert result.returncode == 0, result.stderr
    assert "images: 360" in result.stdout
    assert accuracy(result.stdout) == trained  # same weights, same test images

    result = xpnet("predict", str(weights), "--limit", "4")
    assert result.returncode == 0, result.stderr
    rows = result.stdout.splitlines()
    assert rows[0].split() == ["index", "predicted", "label"]
    test_set = data.load_digits()[1]
    # Numbered as in the whole set: the test images are its last 360 of 1,797.
    assert test_set.first_index == 1797 - 360
    assert [int(r.split()[0]) for r in rows[1:]] == [1437, 1438, 1439, 1440]
    assert [int(r.split()[2]) for r in rows[1:]] == test_set.labels[:4].tolist()
    assert all(0 <= int(r.split()[1]) <= 9 for r in rows[1:])


def test_train_on_idx_files_then_evaluate_and_predict(
    tmp_path: Path, image_files: tuple[Path, Path]
) -> None:
    images, labels = image_files
    weights = tmp_path / "w.safetensors"
    result = xpnet(
        "train",
        "--images",
        str(images),
        "--labels",
        str(labels),
        "--test-size",
        "12",
        "--epochs",
        "3",
        "--batch-size",
        "16",
        "--save",
        str(weights),
    )
    assert result.returncode == 0, result.stderr
    assert (
        "training lenet5 on images:imgs-idx3-ubyte.gz (48 train / 12 test images)" in result.stdout
    )
    assert "lr 0.001 (constant), batch 16, 3 epochs" in result.stdout
    assert len(re.findall(r"^epoch \d/3: ", result.stdout, re.MULTILINE)) == 3
    trained = accuracy(result.stdout)
    # The checkpoint remembers its images and held-out part: evaluate alone finds them.
    result = xpnet("evaluate", str(weights))
    assert result.returncode == 0, result.stderr
    assert "images: 12" in result.stdout and accuracy(result.stdout) == trained
    # Given again, with --test-size, it is the same held-out part.
    result = xpnet(
        "evaluate",
        str(weights),
        "--images",
        str(images),
        "--labels",
        str(labels),
        "--test-size",
        "12",
    )
    assert result.returncode == 0, result.stderr
    assert accuracy(result.stdout) == trained
    # predict on images alone (no labels): every image, no label column.
    result = xpnet("predict", str(weights), "--images", str(images), "--limit", "100")
    assert result.returncode == 0, result.stderr
    rows = result.stdout.splitlines()
    assert rows[0].split() == ["index", "predicted"] and len(rows) == 61


def test_sigterm_and_ctrl_c_leave_the_last_checkpoint_intact(
    tmp_path: Path, image_files: tuple[Path, Path]
) -> None:
    images, labels = image_files
    weights = tmp_path / "out" / "long.safetensors"
    env = {**os.environ, "XPNET_BACKEND": "numpy"}
    command = [
        sys.executable, "-m", "xpnet", "train", "--images", str(images), "--labels", str(labels),
        "--model", "mlp", "--epochs", "100000", "--save", str(weights),
    ]  # fmt: skip
    for sig, status in ((signal.SIGTERM, 143), (signal.SIGINT, 130)):
        weights.unlink(missing_ok=True)
        process = subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT, env=env
        )
        assert process.stdout is not None
        # Wait for an event, not a time: the second epoch's line, printed just after its
        # checkpoint is written (a loaded machine may take seconds per epoch).
        lines = []
        while not any(line.startswith("epoch 2/") for line in lines):
            line = process.stdout.readline()
            assert line, process.communicate()  # the run ended without reaching epoch 2
            lines.append(line)
        # Epochs take milliseconds here: the signal often lands while a checkpoint is
        # being written, which must leave the previous one whole and no temporary file.
        process.send_signal(sig)
        out, err = process.communicate(timeout=60)
        assert process.returncode == status, err
        saved = load_checkpoint(weights)
        assert f"{weights} is intact and holds epoch {saved.meta['epoch']}; continue" in err
        assert "--resume" in err
        printed = [int(n) for n in re.findall(r"^epoch (\d+)/100000", "".join(lines) + out, re.M)]
        assert saved.meta["epoch"] in (printed[-1], printed[-1] + 1) and printed[-1] >= 2
        # No temporary file and no lock left behind.
        assert sorted(p.name for p in weights.parent.iterdir()) == [weights.name]


# -- in-process: resume and errors ----------------------------------------------------------


def test_resume_on_the_command_line_is_exact(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("sklearn")
    common = ("--no-progress", "--batch-size", "128", "--test-size", "1500")
    full, part = str(tmp_path / "full.safetensors"), str(tmp_path / "part.safetensors")
    status, out, _ = run_main(capsys, "train", *common, "--epochs", "3", "--save", full)
    assert status == 0
    # The same run, interrupted (Ctrl-C) during its second epoch.
    real_epoch = loop_module._train_epoch

    def interrupted(*args: Any) -> Any:
        if args[3] == 2:  # _train_epoch(model, step, loader, epoch, epochs, progress)
            raise KeyboardInterrupt
        return real_epoch(*args)

    with monkeypatch.context() as patch:
        patch.setattr(loop_module, "_train_epoch", interrupted)
        status, _, err = run_main(capsys, "train", *common, "--epochs", "3", "--save", part)
    assert status == 130
    assert f"interrupted; {part} is intact and holds epoch 1; continue with the same" in err
    assert load_checkpoint(part).meta["epoch"] == 1
    # Resuming with a clashing setting is refused and leaves the checkpoint alone.
    before = Path(part).read_bytes()
    for args, clash in (
        (["--lr", "0.5"], "--lr 0.5 (checkpoint: 0.01)"),
        (["--test-size", "300"], "--test-size 300 (checkpoint: 1500)"),
        (["--epochs", "4"], "--epochs 4 (checkpoint: 3)"),
        (["--model", "mlp"], "--model mlp (checkpoint: simple_cnn_bn)"),
    ):
        status, _, err = run_main(capsys, "train", "--resume", "--save", part, *args)
        assert status == 2 and clash in err, err
        assert Path(part).read_bytes() == before
    # The bare command with --resume continues with the checkpoint's settings.
    status, resumed_out, _ = run_main(capsys, "train", "--no-progress", "--resume", "--save", part)
    assert status == 0
    assert f"resumed from {part} after epoch 1" in resumed_out
    assert "(297 train / 1500 test images)" in resumed_out and "batch 128, 3 epochs" in resumed_out
    a, b = load_checkpoint(full), load_checkpoint(part)
    assert list(a.model) == list(b.model) and list(a.optimizer) == list(b.optimizer)
    for key in a.model:
        np.testing.assert_array_equal(a.model[key], b.model[key], err_msg=key)
    for key, value in a.optimizer.items():
        np.testing.assert_array_equal(np.asarray(value), np.asarray(b.optimizer[key]), err_msg=key)
    assert accuracy(resumed_out) == accuracy(out)
    # With a constant rate, a finished run can be extended.
    const = str(tmp_path / "const.safetensors")
    status, _, _ = run_main(
        capsys, "train", *common, "--epochs", "1", "--schedule", "constant", "--save", const
    )
    assert status == 0
    status, out, _ = run_main(
        capsys, "train", "--no-progress", "--resume", "--save", const, "--epochs", "2"
    )
    assert status == 0 and "epoch 2/2" in out and load_checkpoint(const).meta["epoch"] == 2


def test_resume_refuses_another_dataset(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], image_files: tuple[Path, Path]
) -> None:
    images, labels = image_files
    weights = str(tmp_path / "w.safetensors")
    args = ("--no-progress", "--images", str(images), "--labels", str(labels), "--model", "mlp")
    status, _, _ = run_main(capsys, "train", *args, "--epochs", "1", "--save", weights)
    assert status == 0
    write_idx(tmp_path / "other-idx3-ubyte", np.zeros((60, 12, 12), np.uint8))
    status, _, err = run_main(
        capsys,
        "train",
        *args[:2],
        str(tmp_path / "other-idx3-ubyte"),
        *args[3:],
        "--resume",
        "--save",
        weights,
    )
    assert status == 2
    assert (
        "was trained on 'images:imgs-idx3-ubyte.gz', this run is on 'images:other-idx3-ubyte'"
        in err
    )


def test_usage_errors_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    for args, message in (
        (["train", "--model", "vgg99"], "invalid choice: 'vgg99'"),
        (["train", "--optimizer", "lbfgs"], "invalid choice: 'lbfgs'"),
        (["train", "--epochs", "0"], "expected an integer from 1 to 1000000000, got '0'"),
        (["train", "--lr", "-1"], "expected a finite number >= 0"),
        (["train", "--resume"], "--resume needs --save PATH"),
        (["train", "--resume", "--save", "x", "--overwrite"], "contradict each other"),
        ([], "required: COMMAND"),
    ):
        try:
            status = cli.main(args)
        except SystemExit as exc:
            status = exc.code
        assert status == 2
        err = capsys.readouterr().err
        # One error line and a pointer to --help, not the usage block.
        assert message in err and "usage:" not in err, err
        assert len(err.strip().splitlines()) <= 2


def test_help_documents_the_defaults(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        cli.main(["train", "--help"])
    out = capsys.readouterr().out
    digits = cli.DEFAULTS["digits"]
    assert f"digits  --model {digits.model}, --epochs {digits.epochs}, --batch-size 64" in out
    assert "--lr: sgd 0.05, adam 0.01, adamw 0.01" in out
    assert "Only\nwith --schedule constant can --epochs grow" in out
    assert "--schedule {cosine,constant}" in out


def test_data_errors_name_what_is_wrong(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    image_files: tuple[Path, Path],
) -> None:
    images, labels = image_files
    missing = tmp_path / "no-such-dir"
    status, _, err = run_main(capsys, "train", "--data-dir", str(missing))
    assert status == 2 and f"{missing}: MNIST directory not found" in err
    monkeypatch.setenv("XPNET_MNIST_DIR", str(missing))
    status, _, err = run_main(capsys, "train", "--dataset", "mnist")
    assert status == 2 and f"{missing}: MNIST directory not found" in err
    status, _, err = run_main(capsys, "train", "--images", str(images))
    assert status == 2 and "training on --images needs --labels" in err
    cases = [
        (["--labels", str(labels)], "--labels needs --images"),
        (["--images", str(images), "--labels", str(labels), "--dataset", "digits"], "not both"),
        (
            ["--images", str(tmp_path / "nope.gz"), "--labels", str(labels)],
            "nope.gz: file not found",
        ),
        (
            ["--images", str(labels), "--labels", str(images)],
            "wrong magic number 2049, expected 2051",
        ),
        (
            ["--images", str(images), "--labels", str(labels), "--test-size", "60"],
            "leaves no training images",
        ),
        (["--dataset", "mnist", "--test-size", "5"], "MNIST has its own split"),
        (["--dataset", "digits", "--data-dir", str(tmp_path)], "--data-dir is for --dataset mnist"),
        (
            [
                "--images",
                str(images),
                "--labels",
                str(labels),
                "--model",
                "simple_cnn",
                "--save",
                str(tmp_path / "d" / "x"),
                "--epochs",
                "1",
                "--backend",
                "nonesuch",
            ],
            "unknown backend 'nonesuch'",
        ),
    ]
    for args, message in cases:
        status, _, err = run_main(capsys, "train", "--no-progress", *args)
        assert status == 2, args
        assert message in err, (args, err)


def test_evaluate_refuses_data_that_does_not_fit(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], image_files: tuple[Path, Path]
) -> None:
    images, labels = image_files
    weights = str(tmp_path / "w.safetensors")
    status, _, _ = run_main(
        capsys,
        "train",
        "--no-progress",
        "--images",
        str(images),
        "--labels",
        str(labels),
        "--model",
        "mlp",
        "--epochs",
        "1",
        "--save",
        weights,
    )
    assert status == 0
    # Labels out of range for the model's 10 classes (all 13 present: not damage).
    big = (np.arange(60) % 13).astype(np.uint8)
    write_idx(tmp_path / "big-idx1-ubyte", big)
    status, _, err = run_main(
        capsys,
        "evaluate",
        weights,
        "--images",
        str(images),
        "--labels",
        str(tmp_path / "big-idx1-ubyte"),
    )
    assert status == 2
    assert (
        f"big-idx1-ubyte: labels out of range: up to 12, but {weights} predicts 10 classes (0 to 9)"
        in err
    )
    # Images of another size.
    write_idx(tmp_path / "small-idx3-ubyte", np.zeros((60, 8, 8), np.uint8))
    status, _, err = run_main(
        capsys,
        "evaluate",
        weights,
        "--images",
        str(tmp_path / "small-idx3-ubyte"),
        "--labels",
        str(labels),
    )
    assert status == 2 and "small-idx3-ubyte: images of shape (1, 8, 8)" in err
    assert "trained on (1, 12, 12)" in err
    status, _, err = run_main(capsys, "evaluate", weights, "--images", str(images))
    assert status == 2 and "--images needs --labels to evaluate" in err
    # Not a checkpoint; a checkpoint whose weights are not its model's.
    (tmp_path / "junk").write_bytes(b"junk junk junk")
    status, _, err = run_main(capsys, "evaluate", str(tmp_path / "junk"))
    assert status == 2 and "not a readable safetensors file" in err
    status, _, err = run_main(capsys, "predict", str(tmp_path / "absent.safetensors"))
    assert status == 2 and "absent.safetensors: checkpoint not found" in err
    saved = load_checkpoint(weights)
    saved.meta["model"] = "lenet5"
    from xpnet.train import save_checkpoint

    save_checkpoint(tmp_path / "liar.safetensors", saved)
    status, _, err = run_main(
        capsys,
        "evaluate",
        str(tmp_path / "liar.safetensors"),
        "--images",
        str(images),
        "--labels",
        str(labels),
    )
    assert status == 2
    assert (
        "weights do not fit its model 'lenet5'" in err
        and "missing from the checkpoint: 0.weight (6, 1, 5, 5)" in err
    )


def test_bench_count_prints_the_step_within_its_budget(
    capsys: pytest.CaptureFixture[str],
) -> None:
    status, out, _ = run_main(capsys, "bench", "--count", "--batch", "32")
    assert status == 0
    assert "LeNet-5 + Adam training step, batch 32" in out
    assert "0 Conv2d forward" in out and "Adam.step" in out
    total = next(line for line in out.splitlines() if line.startswith("total"))
    calls, launches, transfers, syncs = (int(v) for v in total.split()[1:])
    assert transfers <= 1  # the gradients' pointer table for CuPy's concatenate
    assert launches <= 100 and syncs == 0 and calls >= launches


@pytest.mark.parametrize("library", ["numpy", "jax"])
def test_train_compile_matches_eager(
    tmp_path: Path, image_files: tuple[Path, Path], library: str
) -> None:
    # The same run with and without --compile: the same test accuracy; the compiled run
    # says how its steps ran (jax.jit on JAX; eagerly, and why, elsewhere).
    if importlib.util.find_spec(library) is None:
        pytest.skip(f"{library} is not installed here")
    images, labels = image_files
    common = ("train", "--images", str(images), "--labels", str(labels), "--test-size", "12",
              "--epochs", "2", "--batch-size", "16", "--backend", library)  # fmt: skip
    eager, compiled = xpnet(*common), xpnet(*common, "--compile")
    assert eager.returncode == 0 and compiled.returncode == 0, compiled.stderr
    expected = "steps: jax.jit (the whole step)" if library == "jax" else "steps: eager"
    assert expected in compiled.stdout
    losses = [
        [float(v) for v in re.findall(r"^epoch \d/2: loss (\S+),", run.stdout, re.MULTILINE)]
        for run in (eager, compiled)
    ]
    assert len(losses[0]) == 2 and losses[1] == pytest.approx(losses[0], rel=1e-4)
