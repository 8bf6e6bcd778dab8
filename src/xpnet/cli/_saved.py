"""``xpnet evaluate``, ``xpnet predict`` and ``xpnet export``: saved weights on their test
data, or written as an ONNX model."""

from __future__ import annotations

import argparse
import importlib
import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from .. import backends, data, models, nn
from .._paths import kind_of, same_file
from ..train import (
    architecture_mismatch,
    evaluate,
    load_checkpoint,
)
from ._common import CommandError, _activate
from ._data import _load_data, _loader
from ._train import _check_plots, _write_plots


def _restore(args: argparse.Namespace) -> tuple[nn.Module, dict[str, Any]]:
    _activate(args)
    saved = load_checkpoint(args.weights)
    meta = saved.meta
    if "model" in meta and meta["model"] not in models.MODELS:
        raise CommandError(
            f"{args.weights}: metadata field model is {meta['model']!r}, which xpnet does not "
            "know; the checkpoint was edited or written by another program"
        )
    try:
        model = models.build_model(
            meta["model"], meta["in_channels"], meta["num_classes"], meta["image_size"]
        )
    except KeyError as exc:
        raise CommandError(f"{args.weights}: checkpoint lacks the model field {exc}") from None
    mismatch = architecture_mismatch(model.state_dict(), saved.model)
    if mismatch is not None:
        raise CommandError(
            f"{args.weights}: weights do not fit its model {meta['model']!r}: {mismatch}"
        )
    model.load_state_dict(saved.model)
    model.eval()
    return model, meta


def _check_folder_unchanged(
    args: argparse.Namespace, origin: dict[str, Any], test_set: data.Dataset, total: int
) -> None:
    """The training folder, reread: refused when its classes or image count changed, since
    its fixed shuffle would then hold out other images (some seen in training)."""
    classes, count = "/".join(test_set.classes), str(total)
    then = origin.get("image_count", count)
    if origin.get("classes", classes) != classes or then != count:
        raise CommandError(
            f"{args.image_folder} changed since {args.weights} was trained on it (then "
            f"{then} images of classes {origin.get('classes')}, now {count} of "
            f"{classes}): the images it holds out now are not those held out in training; "
            "pass --image-folder with a folder of test images, and --test-size, to choose them"
        )


def _test_data(
    args: argparse.Namespace, meta: dict[str, Any], *, labelled: bool
) -> tuple[data.Dataset, bool]:
    """The data to evaluate on, checked against the checkpoint; and whether it has labels."""
    source = str(meta.get("source", "digits"))
    found = meta.get("data")
    origin: dict[str, Any] = found if isinstance(found, dict) else {}
    given = (args.dataset, args.images, args.data_dir, args.image_folder)
    if all(value is None for value in given):
        # The data the checkpoint was trained on, where training found it.
        keys = ("data_dir", "images", "labels", "image_folder")
        remembered = [str(origin[key]) for key in keys if key in origin]
        gone = [path for path in remembered if not Path(path).exists()]
        if gone:
            raise CommandError(
                f"{args.weights} was trained on data at {', '.join(gone)}, which is no longer "
                "there; pass --data-dir, --image-folder, or --images and --labels, to say "
                "where it is now"
            )
        if source.startswith("folder:"):
            if "image_folder" not in origin:
                raise CommandError(
                    f"{args.weights} was trained on an image folder; pass --image-folder"
                )
            args.image_folder = origin["image_folder"]
            if args.test_size is None:
                args.test_size = meta.get("test_size")  # the held-out part, as trained
        elif source.startswith("images:"):
            if "images" not in origin:
                raise CommandError(
                    f"{args.weights} was trained on {source[len('images:') :]}; pass --images "
                    "(and --labels) to say which images to use"
                )
            args.images = origin["images"]
            args.labels = origin.get("labels")
            if args.labels is not None and args.test_size is None:
                args.test_size = meta.get("test_size")  # the held-out part, as trained
        else:
            args.dataset = source
            if source in ("mnist", "cifar10", "cifar100") and "data_dir" in origin:
                args.data_dir = origin["data_dir"]
        if source == "digits" and args.test_size is None:
            args.test_size = meta.get("test_size")
    if labelled and args.images is not None and args.labels is None:
        raise CommandError("--images needs --labels to evaluate")
    if args.image_folder is not None and args.image_size is None:
        args.image_size = int(meta["image_size"])  # the size the model was trained at
        args.grayscale = args.grayscale or int(meta["in_channels"]) == 1
    rest, test_set, _ = _load_data(args, whole_file=True)
    if source.startswith("folder:") and args.image_folder == origin.get("image_folder"):
        total = len(test_set) if rest is test_set else len(rest) + len(test_set)
        _check_folder_unchanged(args, origin, test_set, total)
    shape = tuple(int(n) for n in test_set.images.shape[1:])
    size = int(meta["image_size"])
    expected = (int(meta["in_channels"]), size, size)
    if shape != expected:
        raise CommandError(
            f"{args.images or test_set.name}: images of shape {shape} (channels, height, "
            "width), but "
            f"{args.weights} was trained on {expected}"
        )
    has_labels = args.images is None or args.labels is not None
    classes = int(meta["num_classes"])
    if has_labels and len(test_set) and int(test_set.labels.max()) >= classes:
        raise CommandError(
            f"{args.labels or test_set.name}: labels out of range: up to "
            f"{int(test_set.labels.max())}, but "
            f"{args.weights} predicts {classes} classes (0 to {classes - 1})"
        )
    return test_set, has_labels


def _eval_loader(args: argparse.Namespace, meta: dict[str, Any], dataset: data.Dataset) -> Any:
    norm = meta.get("normalisation", (0.0, 1.0))
    return _loader(dataset, args.batch_size or 256, (norm[0], norm[1]), shuffle=False)


def _cmd_evaluate(args: argparse.Namespace) -> int:
    _check_plots(args)
    model, meta = _restore(args)
    test_set, _ = _test_data(args, meta, labelled=True)
    loader = _eval_loader(args, meta, test_set)
    result = evaluate(model, loader, progress=not args.no_progress)
    if not math.isfinite(result["loss"]):
        raise CommandError(_not_finite(args.weights, f"test loss {result['loss']}"))
    print(f"images: {len(test_set)}")
    print(f"test loss: {result['loss']:.4f}")
    print(f"test accuracy: {result['accuracy']:.4f}")
    _write_plots(args, model, meta.get("history"), loader)
    return 0


def _cmd_predict(args: argparse.Namespace) -> int:
    model, meta = _restore(args)
    test_set, has_labels = _test_data(args, meta, labelled=False)
    shown = test_set
    if args.limit < len(test_set):
        shown = data.Dataset(
            test_set.images[: args.limit],
            test_set.labels[: args.limit],
            test_set.num_classes,
            test_set.name,
            test_set.first_index,
        )
    # Indices as the file numbers its images (a split's test set starts past the training
    # images), so that an image can be found again.
    print("index  predicted" + ("  label" if has_labels else ""))
    if len(shown) == 0:
        return 0
    index = 0
    for logits in _predictions(args, meta, model, shown):
        if not np.isfinite(logits).all():  # argmax would name a class all the same
            raise CommandError(_not_finite(args.weights, "NaN or infinite logits"))
        for value in logits.argmax(axis=1):
            line = f"{shown.first_index + index:5d}  {int(value):9d}"
            if has_labels:
                line += f"  {int(shown.labels[index]):5d}"
            print(line)
            index += 1
    return 0


def _not_finite(weights: str, what: str) -> str:
    return (
        f"{weights}: the model's outputs on these images are not finite ({what}); its "
        "weights or its normalisation (the metadata field normalisation) do not suit them"
    )


def _predictions(
    args: argparse.Namespace, meta: dict[str, Any], model: nn.Module, shown: data.Dataset
) -> Any:
    """The model's logits on ``shown``, batch by batch (host arrays): here, or on the Dask
    cluster at ``--dask-scheduler``."""
    if args.dask_scheduler is None:
        for x, _ in _eval_loader(args, meta, shown):
            yield backends.to_numpy(model(x))
        return
    scheme, found, _ = str(args.dask_scheduler).partition("://")
    if found and scheme != "tcp":
        raise CommandError(
            f"--dask-scheduler: {scheme}:// addresses need settings (security, transports) "
            "that xpnet does not pass; give the scheduler's tcp://HOST:PORT address"
        )
    try:
        da: Any = importlib.import_module("dask.array")  # loosely typed, for strict mypy
        client_class: Any = importlib.import_module("distributed").Client
    except ImportError:
        raise CommandError(
            "--dask-scheduler: needs Dask (pip install 'dask[array]' distributed)"
        ) from None
    from ..distributed import predict

    norm = meta.get("normalisation", (0.0, 1.0))
    chunk = args.batch_size or 256
    try:
        client = client_class(args.dask_scheduler, timeout=10)
    except (OSError, ValueError, TypeError) as exc:  # unreachable, or not an address
        raise CommandError(
            f"--dask-scheduler: cannot reach {args.dask_scheduler} ({exc})"
        ) from None
    with client:
        images = da.from_array(shown.images, chunks=(chunk, -1, -1, -1))
        yield predict(model, images, mean=norm[0], std=norm[1]).compute()


def _cmd_export(args: argparse.Namespace) -> int:
    """Write a checkpoint's model as ONNX, with what its inputs need in the file's metadata."""
    target = Path(args.output)
    if target.exists() and not target.is_file():  # a folder, a FIFO, /dev/full...
        raise CommandError(f"{target} is {kind_of(target)}; name the .onnx file to write")
    if same_file(target, args.weights):  # --overwrite or not: it would be gone
        raise CommandError(
            f"{target} is the checkpoint being exported ({args.weights}); name another file "
            "for the ONNX model"
        )
    if target.exists() and not args.overwrite:
        raise CommandError(f"{target} exists; pass --overwrite to replace it")
    try:
        from .. import onnx as xonnx
    except ImportError:  # pragma: no cover - the extra is installed where tested
        raise CommandError("xpnet export needs the onnx extra: pip install 'xpnet[onnx]'") from None
    if args.opset not in xonnx.EXPORT_OPSETS:
        opsets = xonnx.EXPORT_OPSETS
        raise CommandError(
            f"--opset: expected {opsets.start} to {opsets.stop - 1}, got {args.opset}"
        )
    model, meta = _restore(args)
    channels, side = meta["in_channels"], meta["image_size"]
    dtype = backends.to_numpy(next(iter(model.parameters()))).dtype
    example = backends.asarray(np.zeros((1, channels, side, side), dtype=dtype))
    normalisation = meta.get("normalisation")
    metadata = {
        "xpnet.model": str(meta["model"]),
        "xpnet.input": f"(N, {channels}, {side}, {side}) images",
        "xpnet.output": f"(N, {meta['num_classes']}) class logits",
    }
    if normalisation is not None:
        mean, std = normalisation
        metadata["xpnet.normalisation"] = json.dumps({"mean": mean, "std": std})
    if "source" in meta:
        metadata["xpnet.dataset"] = str(meta["source"])
    proto = xonnx.export(model, example, target, opset=args.opset, metadata=metadata)
    print(f"wrote {target}: {meta['model']}, opset {args.opset}, {len(proto.graph.node)} nodes, "
          f"{model.num_parameters():,} parameters")  # fmt: skip
    print(f"input 'input': {dtype} (batch, {channels}, {side}, {side})", end="")
    if normalisation is not None:
        print(f", normalised as in training: (x - {mean}) / {std}", end="")
    print(f"\noutput 'output': (batch, {meta['num_classes']}) class logits")
    return 0
