"""Faults and hostile input: nothing lost, nothing silent, no traceback.

Each case states the fault and the one-line error (or the correct result) expected. The
checkpoint cases run on the NumPy backend: they are about files and processes, not
arithmetic (which the rest of the suite checks on every backend).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import xpnet
from test_cli import ROOT, run_main
from test_train import loaders, tiny
from xpnet import optim
from xpnet.train import CheckpointError, fit, load_checkpoint
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


def test_the_command_line_checks_save_before_training(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "afile").write_text("x")
    status, out, err = run_main(
        capsys, "train", "--no-progress", "--save", str(tmp_path / "afile" / "m.safetensors")
    )
    assert status == 2 and "afile is a file" in err
    assert "training " not in out and "Traceback" not in err
