"""The ``xpnet`` command: list backends, train, evaluate and predict.

Run ``xpnet --help`` (or ``python -m xpnet --help``) for the options; ``xpnet train``
alone trains a small CNN on scikit-learn's bundled 8x8 digits, offline, in seconds.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import sys
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

import numpy as np

from . import backends, data, models, nn, optim, viz
from . import random as xrandom
from .train import (
    CheckpointError,
    TrainingDiverged,
    architecture_mismatch,
    evaluate,
    fit,
    load_checkpoint,
)

__all__ = ["DEFAULTS", "main"]

OPTIMIZERS = ("sgd", "adam", "adamw")
SCHEDULES = ("cosine", "constant")


@dataclass(frozen=True)
class Defaults:
    """What ``xpnet train`` uses for a dataset when an option is not given."""

    model: str
    epochs: int
    lr: dict[str, float]
    batch_size: int = 64
    schedule: str = "cosine"


#: Per-dataset defaults. Digits: chosen so that the bare command trains well quickly
#: (0.956 test accuracy in 10 epochs of under a second each with NumPy on 2 CPU cores).
#: MNIST: the usual torch LeNet-5 recipe (Adam at a constant 1e-3, batch 64, 5 epochs), so
#: results compare directly with PyTorch's.
DEFAULTS: dict[str, Defaults] = {
    "digits": Defaults("simple_cnn_bn", 10, {"sgd": 0.05, "adam": 1e-2, "adamw": 1e-2}),
    "mnist": Defaults("lenet5", 5, {"sgd": 0.05, "adam": 1e-3, "adamw": 1e-3}, schedule="constant"),
}
DEFAULTS["images"] = DEFAULTS["mnist"]

# Settings saved in a checkpoint; --resume takes them from there when not given again.
_RESUMED = (
    "model",
    "optimizer",
    "lr",
    "momentum",
    "weight_decay",
    "batch_size",
    "seed",
    "schedule",
    "epochs",
)


class CommandError(Exception):
    """A user-facing error: printed without a traceback, exit status 2."""


class Terminated(KeyboardInterrupt):
    """SIGTERM, turned into an exception so that temporary files are cleaned up."""


def _parse_number(text: str, kind: type[int] | type[float], minimum: int, what: str) -> Any:
    """Parse an option's value as ``kind``, at least ``minimum`` and finite."""
    try:
        value = kind(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None
    if not value >= minimum or value == float("inf"):
        finite = "a finite " + what.removeprefix("a ") if kind is float else what
        raise argparse.ArgumentTypeError(f"expected {finite}, got {text!r}")
    return value


def _positive_int(text: str) -> int:
    return int(_parse_number(text, int, 1, "a positive integer"))


def _non_negative_int(text: str) -> int:
    return int(_parse_number(text, int, 0, "an integer >= 0"))


def _non_negative_float(text: str) -> float:
    return float(_parse_number(text, float, 0, "a number >= 0"))


def _add_data_arguments(parser: argparse.ArgumentParser, labels_optional: bool = False) -> None:
    group = parser.add_argument_group("data")
    group.add_argument(
        "--dataset",
        choices=("digits", "mnist"),
        default=None,
        help="digits: scikit-learn's bundled 8x8 digits, offline (the default; needs the "
        "'digits' extra), last 360 images held out; mnist: the IDX files in --data-dir "
        "(60,000/10,000 with the training files, else the 10,000 test images split "
        "8,000/2,000)",
    )
    group.add_argument(
        "--data-dir",
        default=None,
        help="MNIST folder; implies --dataset mnist (default: $XPNET_MNIST_DIR, else "
        "../shared/data/mnist)",
    )
    group.add_argument(
        "--images", default=None, help="an IDX image file, raw or .gz (instead of --dataset)"
    )
    group.add_argument(
        "--labels",
        default=None,
        help="the IDX label file for --images" + (" (optional here)" if labels_optional else ""),
    )
    group.add_argument(
        "--test-size",
        type=_positive_int,
        default=None,
        help="hold out the last N images for testing: with --images (train default: 20%%; "
        "evaluate/predict default: all images) or with digits (default 360)",
    )


def _add_run_arguments(parser: argparse.ArgumentParser, batch_default: str) -> None:
    group = parser.add_argument_group("running")
    group.add_argument(
        "--backend",
        default=None,
        help="numpy, cupy, torch, jax, array_api_strict, ... (default: $XPNET_BACKEND, "
        "else numpy); see 'xpnet backends'",
    )
    group.add_argument("--device", default=None, help="device on that backend, e.g. cuda:0")
    group.add_argument(
        "--batch-size", type=_positive_int, default=None, help=f"default: {batch_default}"
    )
    group.add_argument("--no-progress", action="store_true", help="hide the progress bar")


def _add_plots_argument(group: Any, when: str) -> None:
    group.add_argument(
        "--plots",
        metavar="DIR",
        default=None,
        help=f"write pictures {when} into DIR: filters, feature maps, training curves, "
        "confusion matrix, predictions and mistakes on the test images (PNG; needs the "
        "'viz' extra)",
    )


def _defaults_help() -> str:
    lines = ["per-dataset defaults (for the options not given):"]
    for name in ("digits", "mnist"):
        d = DEFAULTS[name]
        rates = ", ".join(f"{k} {v:g}" for k, v in d.lr.items())
        lines.append(
            f"  {name:7} --model {d.model}, --epochs {d.epochs}, --batch-size {d.batch_size},"
            f"\n          --schedule {d.schedule}, --lr: {rates}"
        )
    lines.append(
        "  --images as mnist; the model is lenet5 for images of 12x12 and up,\n"
        "          simple_cnn_bn below"
    )
    lines.append(
        "\n--resume takes the settings (model, optimizer, learning rate, batch size, seed,\n"
        "schedule, epochs, test size) from the checkpoint, so the same command continues an\n"
        "interrupted run exactly; options that contradict the checkpoint are refused. Only\n"
        "with --schedule constant can --epochs grow beyond the planned number."
    )
    return "\n".join(lines)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="xpnet",
        description="Convolutional networks on NumPy, CuPy, PyTorch, JAX or array-api-strict.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    commands.add_parser("backends", help="list every backend, its devices, and why not")

    bench = commands.add_parser(
        "bench",
        help="how fast xpnet is here: a short benchmark against PyTorch on the same device",
        description="Times a few convolutions, pooling, a linear layer, cross-entropy and "
        "LeNet-5 training and inference against PyTorch eager on the same device, in the "
        "same process, interleaved; prints xpnet's time over torch's. Needs torch. The full "
        "table, with JSON, Markdown and a plot: python benchmarks/run.py.",
    )
    bench.add_argument("--backend", default="numpy", help="the xpnet backend (default numpy)")
    bench.add_argument("--device", default=None, help="device on that backend, e.g. cuda:0")
    bench.add_argument(
        "--count",
        action="store_true",
        help="instead of timing: count the array ops, GPU launches and host syncs of one "
        "LeNet-5 + Adam training step, layer by layer (no torch needed)",
    )
    bench.add_argument(
        "--batch", type=_positive_int, default=64, help="batch size for --count (default 64)"
    )

    train = commands.add_parser(
        "train",
        help="train a model and report its test accuracy",
        description="Train a model, printing a line per epoch, and end with its test accuracy.",
        epilog=_defaults_help(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _add_data_arguments(train)
    _add_run_arguments(train, "64")
    group = train.add_argument_group("training")
    group.add_argument(
        "--model", choices=sorted(models.MODELS), default=None, help="default: per dataset"
    )
    group.add_argument("--optimizer", choices=OPTIMIZERS, default=None, help="default: adam")
    group.add_argument(
        "--lr", type=_non_negative_float, default=None, help="learning rate (default: per dataset)"
    )
    group.add_argument(
        "--momentum", type=_non_negative_float, default=None, help="for sgd (default 0.9)"
    )
    group.add_argument(
        "--weight-decay",
        type=_non_negative_float,
        default=None,
        help="default: 0 for sgd and adam, 0.01 for adamw",
    )
    group.add_argument(
        "--schedule",
        choices=SCHEDULES,
        default=None,
        help="learning-rate schedule over the epochs: cosine annealing to 0, or constant "
        "(default: per dataset)",
    )
    group.add_argument("--epochs", type=_positive_int, default=None, help="default: per dataset")
    group.add_argument("--seed", type=_non_negative_int, default=None, help="default: 0")
    group.add_argument(
        "--save", default=None, help="checkpoint path (.safetensors), written every epoch"
    )
    group.add_argument(
        "--resume",
        action="store_true",
        help="continue from --save where it stopped (starts afresh if it does not exist)",
    )
    group.add_argument(
        "--compile",
        action="store_true",
        help="compile each training step with the backend's compiler (jax.jit on jax, a "
        "CUDA graph on cupy); backends without one say so and run eagerly",
    )
    _add_plots_argument(group, "after training")

    for name, text in (
        ("evaluate", "evaluate saved weights: test loss and accuracy"),
        ("predict", "predict classes with saved weights"),
    ):
        sub = commands.add_parser(
            name,
            help=text,
            description=f"{text[0].upper()}{text[1:]}. The data default to the test split of "
            "the dataset the checkpoint was trained on (--images: pass them again).",
        )
        sub.add_argument("weights", help="a checkpoint written by 'xpnet train --save'")
        _add_data_arguments(sub, labels_optional=name == "predict")
        _add_run_arguments(sub, "256")
        if name == "evaluate":
            _add_plots_argument(sub, "for these weights (training curves from the checkpoint)")
        if name == "predict":
            sub.add_argument(
                "--limit",
                type=_non_negative_int,
                default=20,
                help="how many images to show (default 20)",
            )
    return parser


# -- data ------------------------------------------------------------------------------------


def _source_kind(source: str) -> str:
    return "images" if source.startswith("images:") else source


def _check_data_arguments(args: argparse.Namespace) -> None:
    if args.images is not None or args.labels is not None:
        if args.dataset is not None or args.data_dir is not None:
            raise CommandError("give either --images/--labels or --dataset/--data-dir, not both")
        if args.images is None:
            raise CommandError("--labels needs --images")
        return
    if args.data_dir is not None:
        if args.dataset == "digits":
            raise CommandError("--data-dir is for --dataset mnist")
        args.dataset = "mnist"
    if args.dataset == "mnist" and args.test_size is not None:
        raise CommandError("--test-size applies to --images and digits; MNIST has its own split")


def _load_data(
    args: argparse.Namespace, *, whole_file: bool = False
) -> tuple[data.Dataset, data.Dataset, str]:
    """Training and test sets and a name for the source (saved in checkpoints)."""
    _check_data_arguments(args)
    if args.images is not None:
        source = f"images:{Path(args.images).name}"
        if args.labels is None:
            images = data.load_images(args.images)
            full = data.Dataset(images, np.zeros(len(images), np.int64), 1, name=args.images)
        else:
            full = data.load_images_labels(args.images, args.labels)
        if whole_file and args.test_size is None:
            return full, full, source
        test_size = args.test_size if args.test_size is not None else max(1, len(full) // 5)
        if len(full) < 2:
            raise CommandError(f"{args.images}: needs at least 2 images to split, has {len(full)}")
        if test_size >= len(full):
            raise CommandError(
                f"--test-size: {test_size} leaves no training images out of {len(full)}"
            )
        train, test = data.split_last(full, test_size)
        return train, test, source
    dataset = args.dataset or "digits"
    if dataset == "mnist":
        folder = args.data_dir or data.find_mnist()
        if folder is None:
            raise CommandError(
                "mnist: no data directory found; pass --data-dir or set XPNET_MNIST_DIR"
            )
        train, test = data.load_mnist(folder)
        return train, test, "mnist"
    test_size = args.test_size if args.test_size is not None else 360
    if test_size >= 1797:
        raise CommandError(f"--test-size: digits has 1,797 images, cannot hold out {test_size}")
    train, test = data.load_digits(test_size)
    return train, test, "digits"


def _normalisation(source: str) -> tuple[float, float]:
    if source == "digits":
        return data.DIGITS_MEAN, data.DIGITS_STD
    return data.MNIST_MEAN, data.MNIST_STD


def _loader(
    dataset: data.Dataset,
    batch_size: int,
    norm: tuple[float, float],
    *,
    shuffle: bool,
    seed: int = 0,
) -> data.DataLoader:
    return data.DataLoader(
        dataset, batch_size=batch_size, shuffle=shuffle, seed=seed, mean=norm[0], std=norm[1]
    )


# -- commands ------------------------------------------------------------------------------


def _activate(args: argparse.Namespace) -> None:
    if args.backend is not None or args.device is not None:
        name = args.backend or backends.get_backend().name
        backends.set_backend(name, args.device)


def _cmd_bench(args: argparse.Namespace) -> int:
    import importlib.util
    import subprocess

    if args.count:
        from .bench import count_lenet5_step, format_counts

        print(format_counts(count_lenet5_step(args.batch), args.batch), end="")
        return 0

    if importlib.util.find_spec("torch") is None:
        raise CommandError("bench compares against PyTorch: pip install 'xpnet[torch]'")
    # A fresh process, so the thread-pool settings apply before NumPy and torch start theirs.
    command = [sys.executable, "-m", "xpnet.bench", "--backend", args.backend]
    if args.device is not None:
        command += ["--device", str(args.device)]
    return subprocess.run(command, env=bench_environment(), check=False).returncode


def bench_environment() -> dict[str, str]:
    """The environment benchmarks run in: idle BLAS and OpenMP threads sleep instead of
    spinning, so the two interleaved libraries do not slow each other down (measured: up to
    2x here otherwise; settings already in the environment win), and OpenBLAS picks its
    own kernels for this CPU."""
    environment = dict(os.environ)
    environment.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    environment.setdefault("OPENBLAS_THREAD_TIMEOUT", "4")
    # Settings for old OpenBLAS builds that hold a current NumPy to its AVX2 kernels.
    for name in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE"):
        environment.pop(name, None)
    return environment


def _cmd_backends(args: argparse.Namespace) -> int:
    for info in backends.list_backends():
        state = "available" if info.available else "unavailable"
        devices = ", ".join(info.devices) if info.devices else "-"
        line = f"{info.name:18} {state:11} devices: {devices}"
        if info.reason:
            line += f"  ({info.reason})"
        print(line)
    return 0


def _saved_settings(args: argparse.Namespace) -> tuple[dict[str, Any], dict[str, Any]]:
    """On ``--resume`` from an existing checkpoint: its metadata and its settings, after
    checking that the options given again agree with them. Fills in ``--test-size``."""
    if not (args.resume and Path(args.save).is_file()):
        return {}, {}
    meta = load_checkpoint(args.save).meta
    saved = dict(meta.get("settings", {}))
    given = {key: getattr(args, key) for key in _RESUMED}
    given["test_size"] = args.test_size
    saved["test_size"] = meta.get("test_size")
    # More epochs than first planned is fine with a constant rate; a cosine schedule is
    # planned over its epochs (and has reached 0 at the end), so it cannot be extended.
    extendable = (args.schedule or saved.get("schedule")) == "constant"
    clashes = [
        f"--{key.replace('_', '-')} {value} (checkpoint: {saved[key]})"
        for key, value in given.items()
        if value is not None
        and key in saved
        and saved[key] != value
        and not (key == "epochs" and extendable)
    ]
    if clashes:
        hint = (
            " (the cosine schedule was planned over --epochs; train with --schedule constant "
            "to extend runs later)"
            if any(c.startswith("--epochs") for c in clashes)
            else ""
        )
        raise CommandError(
            f"--resume: {args.save} was trained with other settings, so the run would not "
            "continue as it began: " + ", ".join(clashes) + "; leave them out to reuse the "
            f"checkpoint's, or train afresh without --resume{hint}"
        )
    if args.test_size is None:
        args.test_size = saved["test_size"]
    return meta, saved


def _settings(
    args: argparse.Namespace, source: str, image_size: int, saved: dict[str, Any]
) -> dict[str, Any]:
    """The training settings: given options, else the checkpoint's (resume), else defaults."""
    given = {key: getattr(args, key) for key in _RESUMED}
    defaults = DEFAULTS[_source_kind(source)]
    chosen: dict[str, Any] = {
        key: given[key] if given[key] is not None else saved.get(key) for key in given
    }
    if chosen["model"] is None:
        # lenet5 needs 12x12 images at least.
        chosen["model"] = defaults.model if image_size >= 12 else "simple_cnn_bn"
    chosen["optimizer"] = chosen["optimizer"] or "adam"
    if chosen["lr"] is None:
        chosen["lr"] = defaults.lr[chosen["optimizer"]]
    if chosen["momentum"] is None:
        chosen["momentum"] = 0.9
    if chosen["weight_decay"] is None:
        chosen["weight_decay"] = 1e-2 if chosen["optimizer"] == "adamw" else 0.0
    chosen["batch_size"] = chosen["batch_size"] or defaults.batch_size
    chosen["seed"] = chosen["seed"] if chosen["seed"] is not None else 0
    chosen["schedule"] = chosen["schedule"] or defaults.schedule
    chosen["epochs"] = chosen["epochs"] or defaults.epochs
    return chosen


def _optimizer(settings: dict[str, Any], model: nn.Module) -> optim.Optimizer:
    lr, decay = settings["lr"], settings["weight_decay"]
    if settings["optimizer"] == "sgd":
        return optim.SGD(model, lr=lr, momentum=settings["momentum"], weight_decay=decay)
    if settings["optimizer"] == "adam":
        return optim.Adam(model, lr=lr, weight_decay=decay)
    return optim.AdamW(model, lr=lr, weight_decay=decay)


def _check_plots(args: argparse.Namespace) -> None:
    """Before any work: matplotlib is there and ``--plots`` can be a folder."""
    if args.plots is None:
        return
    try:
        viz.require_matplotlib()
    except ImportError as exc:
        raise CommandError(f"--plots: {exc}") from None
    folder = Path(args.plots)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise CommandError(f"--plots: {folder} exists and is not a folder") from None
    except OSError as exc:
        raise CommandError(f"--plots: cannot create the folder {folder}: {exc.strerror}") from None
    if not os.access(folder, os.W_OK | os.X_OK):
        raise CommandError(f"--plots: cannot write into {folder}")


def _write_plots(
    args: argparse.Namespace,
    model: nn.Module,
    history: list[dict[str, float]] | None,
    loader: data.DataLoader,
) -> None:
    if args.plots is None:
        return
    written = viz.save_training_plots(model, history, loader, args.plots)
    print(f"plots: {', '.join(str(path) for path in written.values())}")


def _cmd_train(args: argparse.Namespace) -> int:
    _check_plots(args)
    _activate(args)
    if args.images is not None and args.labels is None:
        raise CommandError("training on --images needs --labels")
    saved_meta, saved = _saved_settings(args)
    train_set, test_set, source = _load_data(args)
    if saved_meta and saved_meta.get("source") != source:
        raise CommandError(
            f"--resume: {args.save} was trained on {saved_meta.get('source')!r}, this run is "
            f"on {source!r}"
        )
    channels, image_size = int(train_set.images.shape[1]), int(train_set.images.shape[-1])
    settings = _settings(args, source, image_size, saved)
    xrandom.seed(settings["seed"])
    model = models.build_model(
        settings["model"],
        channels,
        train_set.num_classes,
        image_size,
        rng=np.random.default_rng(settings["seed"]),
    )
    optimizer = _optimizer(settings, model)
    scheduler = (
        optim.CosineAnnealingLR(optimizer, settings["epochs"])
        if settings["schedule"] == "cosine"
        else None
    )
    norm = _normalisation(source)
    active = backends.get_backend()
    print(
        f"training {settings['model']} on {source} ({len(train_set)} train / {len(test_set)} "
        f"test images) with {settings['optimizer']}, lr {settings['lr']:g} "
        f"({settings['schedule']}), batch {settings['batch_size']}, {settings['epochs']} epochs, "
        f"backend {active.name} ({active.device})",
        flush=True,
    )
    meta = {
        "model": settings["model"],
        "in_channels": channels,
        "num_classes": train_set.num_classes,
        "image_size": image_size,
        "normalisation": list(norm),
        "source": source,
        "settings": {key: settings[key] for key in _RESUMED},
        "test_size": args.test_size,
    }
    test_loader = _loader(test_set, max(settings["batch_size"], 256), norm, shuffle=False)
    history = fit(
        model,
        optimizer,
        _loader(train_set, settings["batch_size"], norm, shuffle=True, seed=settings["seed"]),
        settings["epochs"],
        test_loader=test_loader,
        scheduler=scheduler,
        checkpoint=args.save,
        resume=args.resume,
        meta=meta,
        progress=not args.no_progress,
        log=lambda line: print(line, flush=True),
        compile=args.compile,
    )
    seconds = sum(record["seconds"] for record in history)
    print(f"training time: {seconds:.1f} s")
    if args.save is not None:
        print(f"saved: {args.save}")
    print(f"test accuracy: {history[-1]['test_accuracy']:.4f}")
    _write_plots(args, model, history, test_loader)
    return 0


def _restore(args: argparse.Namespace) -> tuple[nn.Module, dict[str, Any]]:
    _activate(args)
    saved = load_checkpoint(args.weights)
    meta = saved.meta
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


def _test_data(
    args: argparse.Namespace, meta: dict[str, Any], *, labelled: bool
) -> tuple[data.Dataset, bool]:
    """The data to evaluate on, checked against the checkpoint; and whether it has labels."""
    source = str(meta.get("source", "digits"))
    if args.dataset is None and args.images is None and args.data_dir is None:
        if source.startswith("images:"):
            raise CommandError(
                f"{args.weights} was trained on {source[len('images:') :]}; pass --images "
                "(and --labels) to say which images to use"
            )
        args.dataset = source
        if source == "digits" and args.test_size is None:
            args.test_size = meta.get("test_size")
    if labelled and args.images is not None and args.labels is None:
        raise CommandError("--images needs --labels to evaluate")
    _, test_set, _ = _load_data(args, whole_file=True)
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
        )
    print("index  predicted" + ("  label" if has_labels else ""))
    if len(shown) == 0:
        return 0
    index = 0
    for x, _ in _eval_loader(args, meta, shown):
        for value in backends.to_numpy(model(x)).argmax(axis=1):
            line = f"{index:5d}  {int(value):9d}"
            if has_labels:
                line += f"  {int(shown.labels[index]):5d}"
            print(line)
            index += 1
    return 0


COMMANDS = {
    "backends": _cmd_backends,
    "bench": _cmd_bench,
    "train": _cmd_train,
    "evaluate": _cmd_evaluate,
    "predict": _cmd_predict,
}


@contextlib.contextmanager
def _sigterm_as_exception() -> Iterator[None]:
    """Turn SIGTERM (``kill``) into :class:`Terminated`, so a checkpoint being written is
    abandoned cleanly (its temporary file removed) and the previous one stays intact."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: FrameType | None) -> None:
        raise Terminated

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``xpnet`` command.

    Parameters
    ----------
    argv : sequence of str, optional
        The arguments (default: ``sys.argv[1:]``).

    Returns
    -------
    int
        The exit status: 0 on success, 1 when training diverged, 2 for a usage or data
        error, 130 after Ctrl-C and 143 after SIGTERM.
    """
    parser = _parser()
    args = parser.parse_args(argv)
    if getattr(args, "resume", False) and args.save is None:
        parser.error("--resume needs --save PATH (the checkpoint to continue from)")
    try:
        with _sigterm_as_exception():
            return COMMANDS[args.command](args)
    except KeyboardInterrupt as exc:
        what = "terminated" if isinstance(exc, Terminated) else "interrupted"
        print(f"\nxpnet: {what}; the last checkpoint written (if any) is intact", file=sys.stderr)
        return 143 if isinstance(exc, Terminated) else 130
    except TrainingDiverged as exc:
        print(f"xpnet: {exc}", file=sys.stderr)
        return 1
    except (
        CommandError,
        CheckpointError,
        data.DatasetError,
        backends.UnknownBackendError,
        backends.BackendUnavailableError,
        ValueError,
        KeyError,
        OSError,
    ) as exc:
        if os.environ.get("XPNET_DEBUG"):
            raise
        message = str(exc.args[0]) if isinstance(exc, KeyError) and exc.args else str(exc)
        print(f"xpnet: error: {message}", file=sys.stderr)
        return 2
