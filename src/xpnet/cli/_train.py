"""``xpnet train``: settings (given, defaulted or resumed), the run, its pictures."""

from __future__ import annotations

import argparse
import math
import os
from pathlib import Path
from typing import Any

import numpy as np

from .. import backends, data, distributed, models, nn, optim, viz
from .. import random as xrandom
from .._numbers import real
from .._paths import same_file
from ..train import fit, load_checkpoint
from ..train._guard import check_writable, resolved
from ._common import _RESUMED, DEFAULTS, OPTIMIZERS, SCHEDULES, CommandError, _activate
from ._data import _load_data, _loader, _normalisation, _source_kind, data_origin
from ._workers import run_workers


def _saved_settings(args: argparse.Namespace) -> tuple[dict[str, Any], dict[str, Any]]:
    """On ``--resume`` from an existing checkpoint: its metadata and its settings, after
    checking that the options given again agree with them. Fills in ``--test-size``."""
    if not (args.resume and Path(args.save).is_file()):
        return {}, {}
    meta = load_checkpoint(args.save).meta
    saved = dict(meta.get("settings", {}))
    for key, known in (("model", models.MODELS), ("optimizer", OPTIMIZERS),
                       ("schedule", SCHEDULES)):  # fmt: skip
        if key in saved and saved[key] not in known:
            raise CommandError(
                f"--resume: {args.save}: metadata field settings.{key} is {saved[key]!r}, "
                f"which xpnet train does not know (it knows {', '.join(sorted(known))}); the "
                "checkpoint was edited or written by another program"
            )
    if "model" in meta and "model" in saved and meta["model"] != saved["model"]:
        raise CommandError(
            f"--resume: {args.save}: metadata says model {meta['model']!r} but settings.model "
            f"{saved['model']!r}; the checkpoint was edited or damaged"
        )
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
    chosen["optimizer"] = chosen["optimizer"] or defaults.optimizer
    if chosen["lr"] is None:
        chosen["lr"] = defaults.lr[chosen["optimizer"]]
    if chosen["momentum"] is None:
        chosen["momentum"] = 0.9
    if chosen["weight_decay"] is None:
        if chosen["optimizer"] == "adamw":
            chosen["weight_decay"] = 1e-2
        elif chosen["optimizer"] == defaults.optimizer:
            chosen["weight_decay"] = defaults.weight_decay
        else:
            chosen["weight_decay"] = 0.0
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


def _rate(value: Any) -> float | None:
    number = real(value)
    return number if number is not None and 0 <= number < math.inf else None


def _check_saved_options(path: str, optimizer: optim.Optimizer, settings: dict[str, Any]) -> None:
    """On ``--resume``: the checkpoint's optimizer options must be ones this command could
    have written (those it has no option for, such as ``maximize``, at their defaults); the
    learning rate must be the one its schedule left (the settings' with a constant rate,
    the scheduler's last with cosine), and the step count is the run's."""
    fresh = optimizer.state_dict()
    checkpoint = load_checkpoint(path)
    saved = checkpoint.optimizer
    schedule = checkpoint.meta.get("scheduler") or {}
    rates = schedule.get("last_lrs") or [schedule.get("last_lr")]
    expected = settings["lr"] if settings["schedule"] == "constant" else rates[0]
    # Rates that are no rates at all are named by the checks of the state itself, later.
    if (
        _rate(saved.get("lr")) is not None
        and _rate(expected) is not None
        and saved["lr"] != expected
    ):
        raise CommandError(
            f"--resume: {path}: optimizer option lr is {saved['lr']!r}, but its schedule "
            f"({settings['schedule']}) left {expected!r}; the checkpoint was edited or "
            "written by another program (resume it with xpnet.fit instead)"
        )
    for key, value in saved.items():
        if key.startswith("state.") or key.endswith(("lr", "step")) or key not in fresh:
            continue
        if isinstance(value, bool | int | float | str) and value != fresh[key]:
            raise CommandError(
                f"--resume: {path}: optimizer option {key} is {value!r}, but xpnet train "
                f"sets it to {fresh[key]!r}; the checkpoint was edited or written by another "
                "program (resume it with xpnet.fit instead)"
            )


def _check_plots(args: argparse.Namespace) -> None:
    """Before any work: matplotlib is there and ``--plots`` can be a folder."""
    if args.plots is None:
        return
    if not str(args.plots).strip():  # Path("") is the current folder: never meant
        raise CommandError(f"--plots: expected a folder, got {args.plots!r}")
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


def _check_save(args: argparse.Namespace) -> None:
    """Before any work: ``--save`` can be written, and is not an earlier run's checkpoint
    that this one would silently replace."""
    if args.save is None:
        return
    path = resolved(Path(args.save))
    for option in ("images", "labels"):
        given = getattr(args, option, None)
        if given is not None and same_file(path, given):
            raise CommandError(
                f"--save: {args.save} is the --{option} file; the checkpoint would replace "
                "the data, so name another file"
            )
    check_writable(path)
    if path.exists() and not (args.resume or args.overwrite):
        raise CommandError(
            f"--save: {path} exists; add --resume to continue that run, or --overwrite to "
            "replace it with a new one"
        )


def _cmd_train(args: argparse.Namespace) -> int:
    _check_plots(args)
    _check_save(args)  # before --workers too: said once, not once per process
    if args.workers is not None:
        if args.distributed:
            raise CommandError("--workers starts the job; --distributed joins one: give one")
        return run_workers(args)
    comm = distributed.init() if args.distributed else None
    root = comm is None or comm.is_root
    say = print if root else _silent
    if comm is not None:  # one GPU per process of a machine, unless --device names one
        backend = args.backend or backends.get_backend().name
        args.device = comm.device_for(backend, args.device)
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
    if comm is not None:  # what every process must share, before any collective
        comm.agree(
            "settings and data",
            {"argv": [a for a in args.argv if a != "--no-progress"], "source": source,
             "shape": list(train_set.images.shape), "test": len(test_set),
             "classes": train_set.num_classes, "resumed": saved},
        )  # fmt: skip
    channels, image_size = int(train_set.images.shape[1]), int(train_set.images.shape[-1])
    height = int(train_set.images.shape[-2])
    if height != image_size:
        raise CommandError(
            f"{source}: images are {height}x{image_size}; the models take square images "
            "(an --image-folder is resized to square with --image-size)"
        )
    settings = _settings(args, source, image_size, saved)
    # Dropout masks differ per process (each its own seed); the model starts from rank 0's.
    xrandom.seed(settings["seed"] + (comm.rank if comm is not None else 0))
    model = models.build_model(
        settings["model"],
        channels,
        train_set.num_classes,
        image_size,
        rng=np.random.default_rng(settings["seed"]),
    )
    optimizer = _optimizer(settings, model)
    if saved_meta:
        _check_saved_options(args.save, optimizer, settings)
    scheduler = (
        optim.CosineAnnealingLR(optimizer, settings["epochs"])
        if settings["schedule"] == "cosine"
        else None
    )
    norm = _normalisation(source, train_set)
    active = backends.get_backend()
    say(
        f"training {settings['model']} on {source} ({len(train_set)} train / {len(test_set)} "
        f"test images) with {settings['optimizer']}, lr {settings['lr']:g} "
        f"({settings['schedule']}), batch {settings['batch_size']}, "
        f"{settings['epochs']} epoch{'s' if settings['epochs'] != 1 else ''}, "
        + ("augmented, " if args.augment else "")
        + f"backend {active.name} ({active.device})"
        + (f", {comm.size} processes" if comm is not None else ""),
        flush=True,
    )
    meta = {
        "model": settings["model"],
        "in_channels": channels,
        "num_classes": train_set.num_classes,
        "image_size": image_size,
        "normalisation": [list(v) if isinstance(v, tuple) else v for v in norm],
        "source": source,
        "data": {**data_origin(args), **_folder_identity(train_set, test_set, source)},
        "settings": {key: settings[key] for key in _RESUMED},
        # The held-out part as used, so that evaluate finds the same test images.
        "test_size": (
            len(test_set)
            if args.test_size is None and source.startswith(("images:", "folder:"))
            else args.test_size
        ),
    }
    test_loader = _loader(test_set, max(settings["batch_size"], 256), norm, shuffle=False)
    train_loader = _loader(
        train_set,
        settings["batch_size"],
        norm,
        shuffle=True,
        seed=settings["seed"],
        transform=_augmentation(image_size) if args.augment else None,
    )
    history = fit(
        model,
        optimizer,
        train_loader,
        settings["epochs"],
        test_loader=test_loader,
        scheduler=scheduler,
        checkpoint=args.save,
        resume=args.resume,
        overwrite=args.overwrite,
        meta=meta,
        progress=not args.no_progress and root,
        log=lambda line: say(line, flush=True),
        compile=args.compile,
        comm=comm,
    )
    seconds = sum(record["seconds"] for record in history)
    say(f"training time: {seconds:.1f} s")
    if args.save is not None:
        say(f"saved: {args.save}")
    say(f"test accuracy: {history[-1]['test_accuracy']:.4f}")
    if root:
        _write_plots(args, model, history, test_loader)
    return 0


def _folder_identity(train: data.Dataset, test: data.Dataset, source: str) -> dict[str, str]:
    """For an image folder: its classes and image count, so that evaluate can tell when the
    folder changed (its fixed shuffle would then hold out other images)."""
    if not source.startswith("folder:"):
        return {}
    return {"classes": "/".join(train.classes), "image_count": str(len(train) + len(test))}


def _augmentation(image_size: int) -> data.transforms.Compose:
    """``--augment``: the CIFAR recipe, a random crop after padding by an eighth of the side
    (4 pixels at 32x32) and a horizontal flip, run on the device."""
    if image_size < 8:
        raise CommandError(f"--augment: images of {image_size}x{image_size} are too small to crop")
    return data.transforms.Compose(
        [
            data.transforms.RandomCrop(image_size, padding=image_size // 8),
            data.transforms.RandomHorizontalFlip(),
        ]
    )


def _silent(*args: Any, **kwargs: Any) -> None:
    """What processes other than rank 0 print: nothing."""
