"""What the commands share: per-dataset defaults, user-facing errors, checked numbers."""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from typing import Any

from .. import backends
from .._limits import INT_BOUNDS, describe

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
    optimizer: str = "adam"
    weight_decay: float = 0.0


#: Per-dataset defaults. Digits: chosen so that the bare command trains well quickly
#: (0.956 test accuracy in 10 epochs of under a second each with NumPy on 2 CPU cores).
#: MNIST: the usual torch LeNet-5 recipe (Adam at a constant 1e-3, batch 64, 5 epochs), so
#: results compare directly with PyTorch's.
DEFAULTS: dict[str, Defaults] = {
    "digits": Defaults("simple_cnn_bn", 10, {"sgd": 0.05, "adam": 1e-2, "adamw": 1e-2}),
    "mnist": Defaults("lenet5", 5, {"sgd": 0.05, "adam": 1e-3, "adamw": 1e-3}, schedule="constant"),
}
# CIFAR: the ResNet paper's recipe (SGD with momentum 0.9, lr 0.1, weight decay 1e-4,
# batch 128), over a cosine schedule shortened to 30 epochs.
for _name in ("cifar10", "cifar100"):
    DEFAULTS[_name] = Defaults(
        "resnet20",
        30,
        {"sgd": 0.1, "adam": 1e-3, "adamw": 1e-3},
        batch_size=128,
        optimizer="sgd",
        weight_decay=1e-4,
    )
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


def bounded(name: str) -> Any:
    """An argparse type for the option whose value a checkpoint keeps as ``name``: the
    same bounds as where the checkpoint is read (:mod:`xpnet._limits`)."""
    low, high = INT_BOUNDS[name]

    def parse(text: str) -> int:
        value = int(_parse_number(text, int, low, describe(name)))
        if value > high:
            raise argparse.ArgumentTypeError(f"expected {describe(name)}, got {text!r}")
        return value

    parse.__name__ = name
    return parse


def _positive_int(text: str) -> int:
    return int(_parse_number(text, int, 1, "a positive integer"))


def _non_negative_int(text: str) -> int:
    return int(_parse_number(text, int, 0, "an integer >= 0"))


def _non_negative_float(text: str) -> float:
    return float(_parse_number(text, float, 0, "a number >= 0"))


def _activate(args: argparse.Namespace) -> None:
    if args.backend is not None or args.device is not None:
        name = args.backend or backends.get_backend().name
        backends.set_backend(name, args.device)
