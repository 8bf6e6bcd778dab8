"""Probe xpnet as a careless or hostile user would, and count how each case ends.

    python scripts/fault_probe.py [--verbose]

Every case is a command line (run as a fresh process) or an API call (in this process),
with the outcome it should have: an error, or success. Each ends as one of

* clear error: the expected refusal, as one line (``xpnet: error: ...`` or a Python
  exception of a documented kind whose message names the argument or file);
* traceback: an unexpected exception type, or a command that printed a traceback;
* silent: success where an error was due (or the wrong answer);
* data lost: a checkpoint that existed before the case and is gone or changed after it;
* fine: success where success was due.

The goal is no tracebacks, nothing silent and nothing lost. The fault tests in
``tests/test_faults.py`` hold the individual cases; this script gives the tally.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import subprocess
import sys
import tempfile
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent


@dataclass
class Case:
    name: str
    run: Callable[[], tuple[int, str]]  # (exit status, stderr or message)
    should_fail: bool
    guarded: Path | None = None  # a checkpoint that must survive the case


def _cli(folder: Path, *args: str) -> Callable[[], tuple[int, str]]:
    def run() -> tuple[int, str]:
        result = subprocess.run(
            [sys.executable, "-m", "xpnet", *args],
            capture_output=True, text=True, cwd=folder, timeout=300,
            env={**os.environ, "XPNET_BACKEND": "numpy"},
        )  # fmt: skip
        return result.returncode, result.stderr

    return run


def _api(
    call: Callable[[], Any], kinds: tuple[type[BaseException], ...]
) -> Callable[[], tuple[int, str]]:
    def run() -> tuple[int, str]:
        try:
            call()
        except kinds as exc:
            return 2, f"{type(exc).__name__}: {exc}"
        except Exception as exc:
            return 1, f"Traceback: {type(exc).__name__}: {exc}"
        return 0, ""

    return run


def _idx(path: Path, array: np.ndarray, magic: int) -> Path:
    header = magic.to_bytes(4, "big") + b"".join(n.to_bytes(4, "big") for n in array.shape)
    data = header + array.astype(np.uint8).tobytes()
    path.write_bytes(gzip.compress(data) if path.suffix == ".gz" else data)
    return path


def build_cases(folder: Path) -> list[Case]:
    from safetensors.numpy import load, save

    import xpnet
    import xpnet.functional as F
    from xpnet import data

    rng = np.random.default_rng(0)
    images = _idx(folder / "imgs-idx3-ubyte", rng.integers(0, 255, (40, 12, 12)), 2051)
    labels = _idx(folder / "labs-idx1-ubyte", rng.integers(0, 4, 40), 2049)
    good = folder / "good.safetensors"
    status = subprocess.run(
        [sys.executable, "-m", "xpnet", "train", "--no-progress", "--images", str(images),
         "--labels", str(labels), "--model", "mlp", "--epochs", "2", "--save", str(good)],
        capture_output=True, text=True, cwd=folder, env={**os.environ, "XPNET_BACKEND": "numpy"},
    )  # fmt: skip
    assert status.returncode == 0, status.stderr
    raw = good.read_bytes()
    header = json.loads(raw[8 : 8 + int.from_bytes(raw[:8], "little")])
    table, arrays = dict(header["__metadata__"]), load(raw)

    def damaged(name: str, tensors: dict[str, Any] | None = None, meta: Any = None,
                metadata: dict[str, str] | None = None) -> Path:  # fmt: skip
        changed = dict(table)
        if meta is not None:
            changed["meta"] = json.dumps(meta(json.loads(table["meta"])))
        changed.update(metadata or {})
        path = folder / f"{name}.safetensors"
        path.write_bytes(save({**arrays, **(tensors or {})}, metadata=changed))
        return path

    weight = next(k for k in arrays if k.startswith("model/"))
    w = arrays[weight]
    checkpoints = {
        "bool weights": damaged("bool", {weight: w > 0}),
        "int32 weights": damaged("int32", {weight: w.astype(np.int32)}),
        "uint8 weights": damaged("uint8", {weight: w.astype(np.uint8)}),
        "complex weights": damaged("complex", {weight: w.astype(np.complex64)}),
        "NaN weights": damaged("nan", {weight: w * np.float32(np.nan)}),
        "inf weights": damaged("inf", {weight: w * np.float32(np.inf)}),
        "meta a list": damaged("metalist", metadata={"meta": "[]"}),
        "meta not JSON": damaged("metajson", metadata={"meta": "{"}),
        "model_keys a number": damaged("keys", metadata={"model_keys": "3"}),
        "optimizer a list": damaged("opt", metadata={"optimizer": "[1]"}),
        "format missing": damaged("format", metadata={"format": "other"}),
        "epoch beyond history": damaged("epoch", meta=lambda m: {**m, "epoch": 7}),
        "image_size 100000": damaged("size", meta=lambda m: {**m, "image_size": 100000}),
        "in_channels -1": damaged("chan", meta=lambda m: {**m, "in_channels": -1}),
        "num_classes 0": damaged("cls", meta=lambda m: {**m, "num_classes": 0}),
        "normalisation std 0": damaged("norm", meta=lambda m: {**m, "normalisation": [0, 0]}),
        "rng a string": damaged("rng", meta=lambda m: {**m, "rng": "x"}),
        "batch_size 0": damaged(
            "batch", meta=lambda m: {**m, "settings": {**m["settings"], "batch_size": 0}}
        ),
        "lr a string": damaged(
            "lr", meta=lambda m: {**m, "settings": {**m["settings"], "lr": "fast"}}
        ),
        "unknown model name": damaged("model", meta=lambda m: {**m, "model": "vgg99"}),
    }
    truncated = folder / "truncated.safetensors"
    truncated.write_bytes(raw[:-40])
    flipped = folder / "flipped.safetensors"
    flipped.write_bytes(bytes([raw[0] ^ 0x10]) + raw[1:])
    sparse = folder / "sparse.safetensors"
    with open(sparse, "wb") as stream:
        stream.truncate(8 * 2**30)
    text = folder / "text.safetensors"
    text.write_text("hello")
    checkpoints |= {
        "truncated": truncated,
        "bit-flipped header": flipped,
        "8 GB sparse file": sparse,
        "a text file": text,
        "a folder": folder,
    }

    cases = []
    for what, path in checkpoints.items():
        for command in ("evaluate", "predict"):
            cases.append(
                Case(f"{command}: checkpoint {what}", _cli(folder, command, str(path)), True)
            )
    # Hostile data files.
    bad_idx = {
        "IDX bomb": folder / "bomb-idx3-ubyte.gz",
        "IDX truncated": folder / "short-idx3-ubyte",
        "IDX wrong magic": folder / "magic-idx3-ubyte",
        "8 GB sparse IDX": folder / "sparse-idx3-ubyte",
        "empty file": folder / "empty-idx3-ubyte",
        "a folder as images": folder,
    }
    with gzip.open(bad_idx["IDX bomb"], "wb", compresslevel=1) as bomb:
        bomb.write((2051).to_bytes(4, "big") + b"".join(n.to_bytes(4, "big") for n in (40, 12, 12)))
        bomb.write(bytes(40 * 144 + 32 * 2**20))  # 32 MiB past the declared images
    bad_idx["IDX truncated"].write_bytes(images.read_bytes()[:-10])
    _idx(bad_idx["IDX wrong magic"], np.zeros((40, 12, 12)), 2049)
    with open(bad_idx["8 GB sparse IDX"], "wb") as stream:
        stream.truncate(8 * 2**30)
    bad_idx["empty file"].write_bytes(b"")
    for what, path in bad_idx.items():
        cases.append(Case(f"train: {what}", _cli(folder, "train", "--images", str(path),
                                                 "--labels", str(labels)), True))  # fmt: skip
    far = _idx(
        folder / "far-idx1-ubyte", np.where(np.arange(40) == 3, 200, np.arange(40) % 4), 2049
    )
    cases.append(Case("train: a label of 200 among 0-3", _cli(folder, "train", "--images",
                      str(images), "--labels", str(far)), True))  # fmt: skip
    cases.append(
        Case("train: a file as --data-dir", _cli(folder, "train", "--data-dir", str(images)), True)
    )
    # Options.
    for args in (["--epochs", "0"], ["--epochs", "-3"], ["--lr", "nan"], ["--lr", "-1"],
                 ["--batch-size", "0"], ["--model", "vgg99"], ["--optimizer", "lbfgs"],
                 ["--backend", "nonesuch"], ["--resume"], ["--test-size", "0"],
                 ["--dataset", "mnist", "--test-size", "5"], ["--labels", str(labels)],
                 ["--num-classes", "3"], ["--save", str(folder)],
                 ["--save", str(images / "x.safetensors")],
                 ["--resume", "--overwrite", "--save", "x"],
                 ["--momentum", "inf"], ["--seed", "-1"], ["--plots", str(images)]):  # fmt: skip
        cases.append(
            Case(f"train {' '.join(args)}", _cli(folder, "train", "--no-progress", *args), True)
        )
    # Data loss: an existing checkpoint and a second run on it.
    keep = folder / "keep.safetensors"
    keep.write_bytes(raw)
    base = [
        "train",
        "--no-progress",
        "--images",
        str(images),
        "--labels",
        str(labels),
        "--model",
        "mlp",
    ]
    cases.append(
        Case(
            "train --save over an existing checkpoint",
            _cli(folder, *base, "--save", str(keep)),
            True,
            keep,
        )
    )
    cases.append(
        Case(
            "train --resume past its last epoch",
            _cli(folder, *base, "--epochs", "2", "--save", str(keep), "--resume"),
            True,
            keep,
        )
    )
    for what, path in list(checkpoints.items())[:8]:
        cases.append(
            Case(
                f"train --resume from {what}",
                _cli(folder, *base, "--epochs", "4", "--save", str(path), "--resume"),
                True,
            )
        )
    # Success where it is due.
    cases.append(
        Case(
            "evaluate the good checkpoint from elsewhere",
            _cli(folder.parent, "evaluate", str(good)),
            False,
        )
    )
    cases.append(Case("predict the good checkpoint", _cli(folder, "predict", str(good)), False))
    # API input.
    x = xpnet.asarray(rng.standard_normal((2, 3, 8, 8)).astype(np.float32))
    w = xpnet.asarray(rng.standard_normal((4, 3, 3, 3)).astype(np.float32))
    kinds = (ValueError, TypeError, data.DatasetError)
    api: dict[str, tuple[Callable[[], Any], bool]] = {
        "conv2d stride 0": (lambda: F.conv2d(x, w, stride=0), True),
        "conv2d padding -1": (lambda: F.conv2d(x, w, padding=-1), True),
        "conv2d groups 2 on 3 channels": (lambda: F.conv2d(x, w, groups=2), True),
        "conv2d 0x0 kernel": (
            lambda: F.conv2d(x, xpnet.asarray(np.zeros((4, 3, 0, 0), np.float32))),
            True,
        ),
        "conv2d kernel larger than input": (
            lambda: F.conv2d(x, xpnet.asarray(np.zeros((4, 3, 9, 9), np.float32))),
            True,
        ),
        "conv2d int input": (
            lambda: F.conv2d(xpnet.asarray(np.zeros((1, 3, 4, 4), np.int64)), w),
            True,
        ),
        "conv2d 2-D input": (
            lambda: F.conv2d(xpnet.asarray(np.zeros((3, 4), np.float32)), w),
            True,
        ),
        "conv2d padding 'full'": (lambda: F.conv2d(x, w, padding="full"), True),
        "conv2d empty batch": (lambda: F.conv2d(x[:0, ...], w), False),
        "max_pool2d kernel 0": (lambda: F.max_pool2d(x, 0), True),
        "max_pool2d kernel 9 on 8 px": (lambda: F.max_pool2d(x, 9), True),
        "linear wrong width": (lambda: F.linear(x, w), True),
        "cross_entropy float targets of wrong shape": (
            lambda: F.cross_entropy(
                xpnet.asarray(np.zeros((2, 3), np.float32)), xpnet.asarray(np.zeros(5, np.float32))
            ),
            True,
        ),
        "cross_entropy target 7 of 3 classes": (
            lambda: F.cross_entropy(
                xpnet.asarray(np.zeros((2, 3), np.float32)), xpnet.asarray(np.asarray([0, 7]))
            ),
            True,
        ),
        "cross_entropy reduction 'avg'": (
            lambda: F.cross_entropy(
                xpnet.asarray(np.zeros((2, 3), np.float32)),
                xpnet.asarray(np.asarray([0, 1])),
                reduction="avg",
            ),
            True,
        ),
        "dropout p 1.5": (lambda: F.dropout(x, 1.5), True),
        # inplace is a documented hint (as in the layers): a new array, the input untouched.
        "relu inplace": (lambda: _inplace_is_a_hint(x), False),
        "vjp cotangent of wrong shape": (lambda: F.vjp(F.relu, x)[1](w), True),
        "load_npz of a text file": (lambda: data.load_npz(text), True),
        "load_idx of a folder": (lambda: data.load_idx(folder), True),
        "DataLoader batch_size 0": (
            lambda: data.DataLoader(
                data.Dataset(np.zeros((2, 1, 4, 4), np.uint8), np.zeros(2, np.int64), 2),
                batch_size=0,
            ),
            True,
        ),
        "Dataset labels out of range": (
            lambda: data.Dataset(np.zeros((2, 1, 4, 4), np.uint8), np.asarray([0, 5]), 2),
            True,
        ),
        "load_state_dict of another architecture": (
            lambda: xpnet.models.build_model("mlp", 1, 4, 12).load_state_dict({"x": np.zeros(2)}),
            True,
        ),
        "set_backend of an unknown name": (lambda: xpnet.set_backend("nonesuch"), True),
    }
    api_kinds = (*kinds, KeyError, xpnet.backends.UnknownBackendError)
    for name, (call, should_fail) in api.items():
        cases.append(Case(f"api: {name}", _api(call, api_kinds), should_fail))
    return cases


def _inplace_is_a_hint(x: Any) -> None:
    import xpnet
    import xpnet.functional as F

    before = np.array(xpnet.to_numpy(x), copy=True)
    result = xpnet.to_numpy(F.relu(x, inplace=True))
    if not np.array_equal(result, np.maximum(before, 0)):
        raise AssertionError("relu(x, inplace=True) is not relu(x)")
    if not np.array_equal(xpnet.to_numpy(x), before):
        raise AssertionError("relu(x, inplace=True) wrote into x")


def classify(case: Case, status: int, message: str, before: bytes | None) -> str:
    if case.guarded is not None and (
        not case.guarded.exists() or case.guarded.read_bytes() != before
    ):
        return "data lost"
    if "Traceback" in message:
        return "traceback"
    if case.should_fail:
        if status == 0:
            return "silent"
        lines = [line for line in message.strip().splitlines() if line]
        return "clear error" if 1 <= len(lines) <= 2 else "traceback"
    return "fine" if status == 0 else "traceback"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--verbose", action="store_true")
    args = parser.parse_args(argv)
    tally: Counter[str] = Counter()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "probe"
        folder.mkdir()
        for case in build_cases(folder):
            before = case.guarded.read_bytes() if case.guarded is not None else None
            status, message = case.run()
            outcome = classify(case, status, message, before)
            tally[outcome] += 1
            if args.verbose or outcome in ("traceback", "silent", "data lost"):
                first = message.strip().splitlines()[-1] if message.strip() else ""
                print(f"{outcome:12} {case.name}: {first[:150]}")
    total = sum(tally.values())
    print(f"cases: {total}; " + ", ".join(f"{k}: {tally[k]}" for k in
          ("clear error", "fine", "traceback", "silent", "data lost")))  # fmt: skip
    return 0 if tally["traceback"] + tally["silent"] + tally["data lost"] == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
