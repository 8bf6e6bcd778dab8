"""The command line's arguments, per command."""

from __future__ import annotations

import argparse
import difflib
from collections.abc import Mapping, Sequence
from typing import Any, NoReturn

from .. import models
from .._version import __version__
from ._common import (
    DEFAULTS,
    OPTIMIZERS,
    SCHEDULES,
    _non_negative_float,
    _non_negative_int,
    _positive_int,
    bounded,
)


def _add_data_arguments(parser: argparse.ArgumentParser, labels_optional: bool = False) -> None:
    group = parser.add_argument_group("data")
    group.add_argument(
        "--dataset",
        choices=("digits", "mnist", "cifar10", "cifar100"),
        default=None,
        help="digits: scikit-learn's bundled 8x8 digits, offline (the default; needs the "
        "'digits' extra), last 360 images held out; mnist: the IDX files in --data-dir "
        "(60,000/10,000 with the training files, else the 10,000 test images split "
        "8,000/2,000); cifar10, cifar100: the official binary files or archive in "
        "--data-dir (50,000/10,000 colour images of 32x32)",
    )
    group.add_argument(
        "--data-dir",
        default=None,
        help="the dataset's folder; alone it implies --dataset mnist (default: "
        "$XPNET_<DATASET>_DIR, else ../shared/data/<dataset>, else the download cache "
        "~/.cache/xpnet/<dataset>)",
    )
    group.add_argument(
        "--download",
        action="store_true",
        help="fetch the official files (mnist, cifar10, cifar100) into --data-dir, or the "
        "cache, when they are not there; checked against their published MD5 sums",
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
        "--image-folder",
        metavar="DIR",
        default=None,
        help="class folders of images, DIR/<class>/<image> (PNG, JPEG, ...; needs the "
        "'images' extra); shuffled once with a fixed seed, the last 20%% held out unless "
        "--test-size; normalised per channel with the training images' statistics",
    )
    group.add_argument(
        "--image-size",
        type=bounded("image_size"),
        default=None,
        help="resize every --image-folder image to N x N (default: keep their size, which "
        "must then be the same for all)",
    )
    group.add_argument(
        "--grayscale", action="store_true", help="read --image-folder images as one channel"
    )
    group.add_argument(
        "--num-classes",
        type=bounded("num_classes"),
        default=None,
        help="how many classes --labels holds (default: the largest label plus one, at "
        "least 10; labels that would invent many empty classes are refused)",
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
        "--batch-size",
        type=bounded("batch_size"),
        default=None,
        help=f"default: {batch_default}",
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
    for name in ("digits", "mnist", "cifar10"):
        d = DEFAULTS[name]
        rates = ", ".join(f"{k} {v:g}" for k, v in d.lr.items())
        decay = f", --weight-decay {d.weight_decay:g}" if d.weight_decay else ""
        lines.append(
            f"  {name:7} --model {d.model}, --epochs {d.epochs}, --batch-size {d.batch_size},"
            f"\n          --optimizer {d.optimizer}{decay}, --schedule {d.schedule},"
            f"\n          --lr: {rates}"
        )
    lines.append("  cifar100 as cifar10")
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


class _Parser(argparse.ArgumentParser):
    """Argument errors as one line and a pointer to ``--help``, not the usage block; an
    unknown option is reported by the command it was given to, with the closest option
    that command has."""

    subcommands: Mapping[str, argparse.ArgumentParser]

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message}\nRun '{self.prog} --help' for usage.\n")

    def parse_args(  # type: ignore[override]
        self, args: Sequence[str] | None = None, namespace: argparse.Namespace | None = None
    ) -> argparse.Namespace:
        """Parse ``args``; an unknown option is blamed on its command (``xpnet train``)."""
        parsed, extras = self.parse_known_args(args, namespace)
        if extras:
            commands = getattr(self, "subcommands", {})
            owner = commands.get(getattr(parsed, "command", None) or "", self)
            known = [o for action in owner._actions for o in action.option_strings]
            hints = [
                f"{word} (did you mean {close[0]}?)"
                for word in extras
                if (close := difflib.get_close_matches(word.split("=")[0], known, n=1))
            ]
            owner.error(
                f"unrecognized arguments: {' '.join(extras)}"
                + (f"; {', '.join(hints)}" if hints else "")
            )
        return parsed


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="xpnet",
        description="Convolutional networks on NumPy, CuPy, PyTorch, JAX or array-api-strict.",
    )
    parser.add_argument("--version", action="version", version=f"xpnet {__version__}")
    commands = parser.add_subparsers(
        dest="command", required=True, metavar="COMMAND", parser_class=_Parser
    )
    parser.subcommands = commands.choices

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
        "--batch",
        type=bounded("batch_size"),
        default=64,
        help="batch size for --count (default 64)",
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
    group.add_argument(
        "--epochs", type=bounded("epochs"), default=None, help="default: per dataset"
    )
    group.add_argument("--seed", type=bounded("seed"), default=None, help="default: 0")
    group.add_argument(
        "--save", default=None, help="checkpoint path (.safetensors), written every epoch"
    )
    group.add_argument(
        "--resume",
        action="store_true",
        help="continue from --save where it stopped (starts afresh if it does not exist)",
    )
    group.add_argument(
        "--overwrite",
        action="store_true",
        help="replace an existing --save file with a new run (without it, or --resume, an "
        "existing file is an error)",
    )
    group.add_argument(
        "--compile",
        action="store_true",
        help="compile each training step with the backend's compiler (jax.jit on jax, a "
        "CUDA graph on cupy); backends without one say so and run eagerly",
    )
    group.add_argument(
        "--augment",
        action="store_true",
        help="augment the training batches on the device: a random crop after padding by "
        "an eighth of the side (4 pixels at 32x32) and a random horizontal flip",
    )
    _add_plots_argument(group, "after training")
    scale = train.add_argument_group("several processes (MPI: pip install mpi4py mpich)")
    scale.add_argument(
        "--workers",
        type=bounded("workers"),
        default=None,
        help="train data-parallel in N processes: reruns this command under "
        "'mpiexec -n N python -m mpi4py -m xpnet train --distributed'; --batch-size stays the "
        "global batch",
    )
    scale.add_argument(
        "--distributed",
        action="store_true",
        help="this process is one of an MPI job (started by mpiexec, as --workers does): "
        "split every batch over the job, average the gradients; rank 0 logs and saves",
    )

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
            sub.add_argument(
                "--dask-scheduler",
                default=None,
                metavar="ADDRESS",
                help="compute the predictions on a Dask cluster (e.g. tcp://host:8786), "
                "in chunks of --batch-size images (pip install 'dask[array]' distributed)",
            )

    export = commands.add_parser(
        "export",
        help="write saved weights as an ONNX model (needs the onnx extra)",
        description="Write a checkpoint's model as an ONNX graph, one node per layer, with a "
        "symbolic batch dimension; the input normalisation it was trained with goes into the "
        "file's metadata (xpnet.normalisation). Runs in onnxruntime and other ONNX runtimes.",
    )
    export.add_argument("weights", help="a checkpoint written by 'xpnet train --save'")
    export.add_argument("output", help="the .onnx file to write (whole or not at all)")
    export.add_argument("--opset", type=int, default=17, help="ONNX opset, 13 to 21 (default 17)")
    export.add_argument("--overwrite", action="store_true", help="replace OUTPUT when it exists")
    export.add_argument(
        "--backend", default=None, help="the backend that traces the model (default numpy)"
    )
    export.add_argument("--device", default=None, help="device on that backend")
    return parser
