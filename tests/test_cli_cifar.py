"""``xpnet train --dataset cifar10 --model resnet20 --augment`` end to end on files in the
official binary layout (3 images a file: the size check is narrowed to that), and
``--image-folder`` on PNG class folders, each checkpoint evaluated again; downloads and
the newcomer's frictions (``--version``, a mistyped flag)."""

from __future__ import annotations

import dataclasses
import hashlib
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from test_cifar import _tar, _write_cifar10, server  # noqa: F401 (the fixture)
from test_cli import accuracy, run_main
from xpnet import __version__, data
from xpnet.train import load_checkpoint


@pytest.fixture
def small_cifar(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """A CIFAR-10 folder of 3 images per file; the official-size check expects 3."""
    layout = data.CIFAR_LAYOUTS["cifar10"]
    counts = dict.fromkeys(layout.records_per_file, 3)
    monkeypatch.setitem(
        data.CIFAR_LAYOUTS, "cifar10", dataclasses.replace(layout, records_per_file=counts)
    )
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv("XPNET_CIFAR10_DIR", raising=False)
    root = tmp_path / "cifar"
    _write_cifar10(root)
    return root


def test_train_resnet20_on_cifar_with_augmentation_then_evaluate(
    capsys: pytest.CaptureFixture[str], small_cifar: Path, tmp_path: Path
) -> None:
    save = tmp_path / "r20.safetensors"
    status, out, err = run_main(
        capsys,
        "train",
        "--dataset",
        "cifar10",
        "--data-dir",
        str(small_cifar),
        "--model",
        "resnet20",
        "--augment",
        "--epochs",
        "1",
        "--batch-size",
        "5",
        "--save",
        str(save),
        "--no-progress",
    )
    assert status == 0, err
    assert "training resnet20 on cifar10 (15 train / 3 test images) with sgd, lr 0.1" in out
    assert "augmented" in out
    trained = accuracy(out)
    meta = load_checkpoint(save).meta
    assert meta["normalisation"] == [list(data.CIFAR10_MEAN), list(data.CIFAR10_STD)]
    assert meta["settings"]["weight_decay"] == 1e-4 and meta["in_channels"] == 3
    status, out, err = run_main(capsys, "evaluate", str(save), "--no-progress")
    assert status == 0, err
    assert accuracy(out) == trained  # the same test images, found from the checkpoint


def test_missing_cifar_says_where_to_get_it(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv("XPNET_CIFAR10_DIR", raising=False)
    monkeypatch.chdir(tmp_path)
    status, _, err = run_main(capsys, "train", "--dataset", "cifar10")
    assert status == 2
    assert "cifar10: no data directory found" in err and "--download" in err
    assert "https://www.cs.toronto.edu/~kriz/cifar.html" in err
    status, _, err = run_main(capsys, "train", "--dataset", "cifar10", "--data-dir", str(tmp_path))
    assert status == 2 and "cifar-10-binary.tar.gz" in err and "download=True" in err
    status, _, err = run_main(capsys, "train", "--download")
    assert status == 2 and "--download is for --dataset mnist, cifar10 or cifar100" in err


def test_download_flag_fetches_into_the_cache(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    small_cifar: Path,
    server,  # noqa: F811 (the fixture)
    tmp_path: Path,
) -> None:
    url, served, _ = server
    _tar(small_cifar / "cifar-10-batches-bin", served / "cifar-10-binary.tar.gz")
    digest = hashlib.md5((served / "cifar-10-binary.tar.gz").read_bytes()).hexdigest()
    for table in (data.CIFAR_LAYOUTS,):
        monkeypatch.setitem(table, "cifar10", dataclasses.replace(table["cifar10"], md5=digest))
    monkeypatch.setitem(
        data.DOWNLOADS, "cifar10", data.Download({"cifar-10-binary.tar.gz": digest}, (url,))
    )
    monkeypatch.chdir(tmp_path)
    status, out, err = run_main(
        capsys,
        "train",
        "--dataset",
        "cifar10",
        "--download",
        "--model",
        "simple_cnn",
        "--epochs",
        "1",
        "--no-progress",
    )
    assert status == 0, err
    assert "downloading " + url + "cifar-10-binary.tar.gz" in err
    assert (tmp_path / "cache" / "xpnet" / "cifar10" / "cifar-10-binary.tar.gz").is_file()
    assert "(15 train / 3 test images)" in out


def test_version_and_a_mistyped_flag() -> None:
    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "xpnet", *args], capture_output=True, text=True, check=False
        )

    version = run("--version")
    assert version.returncode == 0 and version.stdout.strip() == f"xpnet {__version__}"
    typo = run("train", "--lerning-rate", "0.1", "--epochs", "1")
    assert typo.returncode == 2
    assert "xpnet train: error: unrecognized arguments: --lerning-rate 0.1" in typo.stderr
    assert "Run 'xpnet train --help' for usage." in typo.stderr
    close = run("train", "--augmnt")
    assert "--augmnt (did you mean --augment?)" in close.stderr


def test_train_on_an_image_folder_then_evaluate_and_predict(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """Two classes told apart by colour, as PNG files in class folders; 16x12 pictures
    resized to 12x12."""
    image = pytest.importorskip("PIL.Image", reason="Pillow is not installed (the 'images' extra)")
    rng = np.random.default_rng(0)
    for name, colour in (("red", (200, 30, 30)), ("blue", (30, 30, 200))):
        (tmp_path / "pics" / name).mkdir(parents=True)
        for index in range(20):
            noise = rng.integers(-20, 20, size=(12, 16, 3))
            pixels = np.clip(np.array(colour) + noise, 0, 255).astype(np.uint8)
            image.fromarray(pixels).save(tmp_path / "pics" / name / f"{index}.png")
    folder, save = str(tmp_path / "pics"), str(tmp_path / "folder.safetensors")
    status, _, err = run_main(capsys, "train", "--image-folder", folder, "--no-progress")
    assert status == 2 and "the images are 16x12 pixels" in err and "--image-size" in err
    status, out, err = run_main(
        capsys,
        "train", "--image-folder", folder, "--image-size", "12", "--epochs", "3",
        "--save", save, "--no-progress",
    )  # fmt: skip
    assert status == 0, err
    assert "training lenet5 on folder:pics (32 train / 8 test images)" in out
    assert accuracy(out) == 1.0  # colour alone separates the classes
    meta = load_checkpoint(save).meta
    assert meta["in_channels"] == 3 and meta["image_size"] == 12 and meta["test_size"] == 8
    assert len(meta["normalisation"][0]) == 3  # per channel, from the training images
    status, out, err = run_main(capsys, "evaluate", save, "--no-progress")
    assert status == 0, err
    assert accuracy(out) == 1.0 and "images: 8" in out
    status, out, err = run_main(capsys, "predict", save, "--limit", "3")
    assert status == 0, err
    # One more picture: the fixed shuffle would hold out other images, so evaluate refuses.
    image.fromarray(np.zeros((12, 16, 3), np.uint8)).save(tmp_path / "pics" / "red" / "x.png")
    status, _, err = run_main(capsys, "evaluate", save, "--no-progress")
    assert status == 2 and "changed since" in err and "then 40 images" in err
    status, _, err = run_main(capsys, "train", "--image-size", "12")
    assert status == 2 and "--image-size and --grayscale apply to --image-folder" in err
    status, _, err = run_main(capsys, "train", "--image-folder", folder, "--dataset", "mnist")
    assert status == 2 and "drop --dataset" in err
