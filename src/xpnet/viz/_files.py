"""Writing pictures: one figure atomically, or every training picture at once."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import array_api_compat
import numpy as np

from .. import backends, nn
from .._atomic import replacing
from ..data import DataLoader, Dataset

if TYPE_CHECKING:
    from matplotlib.figure import Figure

from ._classification import plot_confusion_matrix, plot_predictions
from ._common import TRAINING_PICTURES, _figure_class, _positive, require_matplotlib
from ._curves import plot_training_curves
from ._feature_maps import layer_chain, plot_feature_maps
from ._filters import conv_layers, plot_filters

# -- files ---------------------------------------------------------------------------------


def save_figure(fig: Figure, path: str | os.PathLike[str], *, dpi: float | None = 120) -> Path:
    """Write a figure atomically: to a temporary file in the same folder, then renamed.

    ``path`` holds either what it held before or the whole new picture, never a partial
    file, even if drawing fails or the process is killed.

    Parameters
    ----------
    fig : matplotlib.figure.Figure
    path : path-like
        The format follows the suffix (``.png``, ``.svg``, ``.pdf``, ...; none: PNG).
        Parent folders are created.
    dpi : float or None, default 120
        Resolution of raster formats (``None``: matplotlib's default).

    Returns
    -------
    Path
        The path written.

    Raises
    ------
    ValueError
        For a format matplotlib cannot write.
    TypeError
        When ``fig`` is not a matplotlib Figure.
    """
    figure_class = _figure_class()
    if not isinstance(fig, figure_class):
        raise TypeError(f"fig: expected a matplotlib Figure, got {type(fig).__name__}")
    target = Path(path)
    kind = target.suffix[1:].lower() or "png"
    supported = fig.canvas.get_supported_filetypes()
    if kind not in supported:
        raise ValueError(
            f"path: {target} has the format {kind!r}, which matplotlib cannot write; "
            f"choose one of {', '.join(sorted(supported))}"
        )
    with replacing(target) as stream:
        fig.savefig(stream, format=kind, dpi="figure" if dpi is None else dpi)
    return target


def _softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(axis=1, keepdims=True)
    exp = np.exp(shifted)
    result: np.ndarray = exp / exp.sum(axis=1, keepdims=True)
    return result


def _gather(
    model: nn.Module, loader: DataLoader, keep: int
) -> tuple[Any, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """One pass in inference mode: the first input (on the backend), targets, predicted
    probabilities, and host copies of the first ``keep`` images and of the first ``keep``
    mistakes with their indices."""
    first = None
    targets, probabilities = [], []
    head: list[np.ndarray] = []
    mistakes: list[np.ndarray] = []
    mistake_index: list[np.ndarray] = []
    seen = 0
    modes = [(module, module.training) for module in model.modules()]
    model.eval()
    try:
        for x, y in loader:
            if first is None:
                first = x[0:1, ...]
            output = backends.to_numpy(model(x)).astype(np.float64)
            if output.ndim != 2:
                raise ValueError(
                    f"model: expected outputs (N, num_classes), got shape {output.shape}"
                )
            target = backends.to_numpy(y).astype(np.int64)
            probs = _softmax(output)
            targets.append(target)
            probabilities.append(probs)
            host = backends.to_numpy(x)
            if sum(map(len, head)) < keep:
                head.append(host[: keep - sum(map(len, head))])
            if sum(map(len, mistakes)) < keep:
                wrong = np.flatnonzero(probs.argmax(axis=1) != target)
                wrong = wrong[: keep - sum(map(len, mistakes))]
                mistakes.append(host[wrong])
                mistake_index.append(wrong + seen)
            seen += len(target)
    finally:
        for module, mode in modes:
            object.__setattr__(module, "training", mode)
    if first is None:
        raise ValueError("data: produced no batches")
    return (
        first,
        np.concatenate(targets),
        np.concatenate(probabilities),
        np.concatenate(head),
        np.concatenate(mistakes),
        np.concatenate(mistake_index),
    )


def training_figures(
    model: nn.Module,
    history: Sequence[Mapping[str, float]] | None,
    data: DataLoader | Dataset,
    *,
    class_names: Sequence[str] | None = None,
    max_images: int = 25,
    pictures: Sequence[str] | None = None,
) -> dict[str, Figure]:
    """The pictures of a trained classifier, by name (see :data:`TRAINING_PICTURES`).

    Runs ``model`` once over ``data`` in inference mode (every module's mode is restored
    afterwards) and draws:

    ``filters``
        The first Conv2d layer's filters (:func:`plot_filters`); skipped without one.
    ``feature_maps``
        The first input's feature maps (:func:`plot_feature_maps`); skipped when the model
        has no convolution or pooling layer.
    ``training_curves``
        :func:`plot_training_curves`; skipped when ``history`` is empty or ``None``.
    ``confusion_matrix``
        :func:`plot_confusion_matrix` over all of ``data``.
    ``predictions``
        The first ``max_images`` images with the predicted class and its probability
        (the softmax of the model's output) and the true class, mistakes in red
        (:func:`plot_predictions`).
    ``mistakes``
        The first ``max_images`` wrongly classified images.

    Parameters
    ----------
    model : Module
        A classifier giving ``(N, num_classes)`` scores (logits).
    history : sequence of mapping or None
        What :func:`xpnet.fit` returned.
    data : DataLoader or Dataset
        The examples to evaluate on, usually the test split. A loader's batches are used
        as they come (normalised as the loader does, and so drawn); a Dataset is read
        unnormalised in batches of 256, in the model's float dtype.
    class_names : sequence of str, optional
        Default: the class indices.
    max_images : int, default 25
        How many images ``predictions`` and ``mistakes`` show.
    pictures : sequence of str, optional
        Draw only these (default: all that apply).

    Returns
    -------
    dict of str to matplotlib.figure.Figure
        In the order above.

    Raises
    ------
    ValueError
        When ``data`` is empty, the model's output is not ``(N, num_classes)``, or
        ``pictures`` names an unknown picture.
    TypeError
        When ``data`` is neither a DataLoader nor a Dataset.
    ImportError
        When matplotlib is missing.
    """
    require_matplotlib()
    _positive("max_images", max_images)
    wanted = list(TRAINING_PICTURES) if pictures is None else list(pictures)
    unknown = [name for name in wanted if name not in TRAINING_PICTURES]
    if unknown or isinstance(pictures, str):
        raise ValueError(
            f"pictures: expected names from {', '.join(TRAINING_PICTURES)}, got {pictures!r}"
        )
    if isinstance(data, Dataset):
        params = list(model.parameters())
        wide = (
            bool(params) and array_api_compat.array_namespace(params[0]).float64 == params[0].dtype
        )
        data = DataLoader(data, batch_size=256, dtype="float64" if wide else "float32")
    elif not isinstance(data, DataLoader):
        raise TypeError(f"data: expected a DataLoader or a Dataset, got {type(data).__name__}")
    first, targets, probabilities, head, mistakes, mistake_index = _gather(model, data, max_images)
    names = list(class_names) if class_names is not None else None
    wrong = probabilities.argmax(axis=1) != targets
    mistaken, head_mistakes = int(wrong.sum()), int(wrong[: len(head)].sum())
    draw: dict[str, Any] = {
        "filters": lambda: plot_filters(model),
        "feature_maps": lambda: plot_feature_maps(model, first),
        "training_curves": lambda: plot_training_curves(history or []),
        "confusion_matrix": lambda: plot_confusion_matrix(
            targets, probabilities, names, num_classes=probabilities.shape[1]
        ),
        "predictions": lambda: plot_predictions(
            head,
            targets[: len(head)],
            probabilities[: len(head)],
            probabilities[: len(head)],
            class_names=names,
            max_images=max_images,
            title=f"the first {len(head)} of {len(targets)} images, {head_mistakes} "
            f"mistake{'' if head_mistakes == 1 else 's'} among them"
            + (" (red)" if head_mistakes else ""),
        ),
        "mistakes": lambda: plot_predictions(
            mistakes,
            targets[mistake_index],
            probabilities[mistake_index],
            probabilities[mistake_index],
            class_names=names,
            max_images=max_images,
            only_mistakes=True,
            title=(
                f"{len(mistakes)} of the {mistaken} mistakes among {len(targets):,} images"
                if mistaken
                else f"no mistakes among {len(targets):,} images"
            ),
        ),
    }
    applies = {
        "filters": bool(conv_layers(model)),
        "feature_maps": any(
            isinstance(m, nn.Conv2d | nn.MaxPool2d | nn.AvgPool2d | nn.AdaptiveAvgPool2d)
            for _, m in layer_chain(model)
        ),
        "training_curves": bool(history),
    }
    return {
        name: draw[name]()
        for name in TRAINING_PICTURES
        if name in wanted and applies.get(name, True)
    }


def save_training_plots(
    model: nn.Module,
    history: Sequence[Mapping[str, float]] | None,
    data: DataLoader | Dataset,
    directory: str | os.PathLike[str],
    *,
    class_names: Sequence[str] | None = None,
    max_images: int = 25,
    pictures: Sequence[str] | None = None,
    dpi: float | None = 120,
) -> dict[str, Path]:
    """Write the pictures of a trained classifier into a folder, as ``<name>.png``.

    What ``xpnet train --plots DIR`` and ``xpnet evaluate --plots DIR`` do: the figures
    of :func:`training_figures` (``filters.png``, ``feature_maps.png``,
    ``training_curves.png``, ``confusion_matrix.png``, ``predictions.png``,
    ``mistakes.png``; those that apply), each written with :func:`save_figure`.

    Parameters
    ----------
    model, history, data, class_names, max_images, pictures
        As for :func:`training_figures`.
    directory : path-like
        Created if needed; files in it with these names are replaced (atomically).
    dpi : float or None, default 120

    Returns
    -------
    dict of str to Path
        The files written, by picture name.

    Raises
    ------
    ValueError, TypeError, ImportError
        As :func:`training_figures`.
    """
    figures = training_figures(
        model,
        history,
        data,
        class_names=class_names,
        max_images=max_images,
        pictures=pictures,
    )
    folder = Path(directory)
    return {
        name: save_figure(fig, folder / f"{name}.png", dpi=dpi) for name, fig in figures.items()
    }
