"""Pictures of a classifier's results: the confusion matrix and sample predictions."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from matplotlib.figure import Figure

from ._common import _CORRECT_COLOR, MISTAKE_COLOR, _Grid, _host, _new_figure, _positive, _size

# -- classification results ----------------------------------------------------------------


def _labels(value: Any, name: str) -> np.ndarray:
    """Class indices from labels ``(N,)`` or from scores ``(N, K)`` (their argmax)."""
    host = _host(value, name)
    if host.ndim == 2:
        if host.shape[1] == 0:
            raise ValueError(f"{name}: scores of shape {host.shape} have no classes")
        indices: np.ndarray = np.argmax(host, axis=1).astype(np.int64)
        return indices
    if host.ndim != 1:
        raise ValueError(
            f"{name}: expected class indices (N,) or scores (N, num_classes), got shape "
            f"{host.shape}"
        )
    if host.dtype.kind == "b" or host.dtype.kind not in "iuf":
        raise ValueError(f"{name}: expected integer class indices, got dtype {host.dtype}")
    if host.dtype.kind == "f" and (not np.all(np.isfinite(host)) or np.any(host != np.round(host))):
        raise ValueError(f"{name}: expected integer class indices, got non-integer values")
    labels = host.astype(np.int64)
    if labels.size and labels.min() < 0:
        raise ValueError(f"{name}: class indices must be >= 0, got {int(labels.min())}")
    return labels


def _class_names(class_names: Sequence[str] | None, count: int) -> list[str]:
    if class_names is None:
        return [str(k) for k in range(count)]
    if isinstance(class_names, str) or not isinstance(class_names, Sequence):
        raise ValueError(f"class_names: expected a sequence of str, got {class_names!r:.80}")
    return [str(name) for name in class_names]


def plot_confusion_matrix(
    targets: Any,
    predictions: Any,
    class_names: Sequence[str] | None = None,
    *,
    normalize: str | None = None,
    num_classes: int | None = None,
    annotate: bool | None = None,
    cmap: str = "Blues",
    title: str | None = None,
    figsize: tuple[float, float] | None = None,
) -> Figure:
    """Draw the confusion matrix: how often each true class was predicted as each class.

    Rows are true classes, columns predicted classes; each cell is annotated with its
    count (and, when normalised, the fraction below it), and the title gives the accuracy.

    Parameters
    ----------
    targets : array
        True class indices ``(N,)``, of any backend.
    predictions : array
        Predicted class indices ``(N,)``, or scores ``(N, num_classes)`` (logits or
        probabilities) whose argmax is taken.
    class_names : sequence of str, optional
        Tick labels (default ``"0"``, ``"1"``, ...); their number sets the classes.
    normalize : {None, "true", "pred", "all"}, default None
        Colour by count, or by the fraction of each true class (row), of each predicted
        class (column), or of all examples, as scikit-learn's ``confusion_matrix`` does.
    num_classes : int, optional
        Default: ``len(class_names)``, else the largest index seen plus one.
    annotate : bool, optional
        Write the numbers in the cells (default: with at most 30 classes).
    cmap : str, default "Blues"
    title : str, optional
        Default: the accuracy.
    figsize : (float, float), optional

    Returns
    -------
    matplotlib.figure.Figure
        One axes (plus a colour bar) whose image holds the colour values (counts, or the
        normalised fractions) and whose texts are the annotations.

    Raises
    ------
    ValueError
        For different numbers of targets and predictions, no examples, indices that are
        negative, not integers or beyond the classes, or an unknown ``normalize``.
    """
    true = _labels(targets, "targets")
    predicted = _labels(predictions, "predictions")
    if true.shape[0] != predicted.shape[0]:
        raise ValueError(
            f"targets and predictions: expected the same length, got {true.shape[0]} targets "
            f"and {predicted.shape[0]} predictions"
        )
    if true.shape[0] == 0:
        raise ValueError("targets: no examples to count")
    if normalize not in (None, "true", "pred", "all"):
        raise ValueError(f"normalize: expected None, 'true', 'pred' or 'all', got {normalize!r}")
    _positive("num_classes", num_classes, allow_none=True)
    seen = int(max(true.max(), predicted.max())) + 1
    count = num_classes or (len(class_names) if class_names is not None else seen)
    names = _class_names(class_names, count)
    if len(names) != count:
        raise ValueError(f"class_names: expected {count} names (num_classes), got {len(names)}")
    if seen > count:
        which = "targets" if int(true.max()) >= count else "predictions"
        raise ValueError(
            f"{which}: class index {seen - 1} is beyond the {count} classes (0 to {count - 1})"
        )
    counts = np.bincount(true * count + predicted, minlength=count * count).reshape(count, count)
    values = counts.astype(np.float64)
    if normalize is not None:
        total = {
            "true": counts.sum(axis=1, keepdims=True),
            "pred": counts.sum(axis=0, keepdims=True),
            "all": np.full((1, 1), counts.sum()),
        }[normalize]
        values = np.divide(values, total, out=np.zeros_like(values), where=total > 0)
    side = max(4.0, min(14.0, 0.55 * count + 2.5))
    fig = _new_figure(_size(figsize, (side + 1.2, side)))
    ax = fig.add_subplot()
    vmax = float(values.max()) or 1.0
    image = ax.imshow(values, cmap=cmap, vmin=0.0, vmax=vmax, interpolation="nearest")
    label = {
        None: "count",
        "true": "fraction of the true class",
        "pred": "fraction of the predicted class",
        "all": "fraction of all examples",
    }[normalize]
    fig.colorbar(image, ax=ax, label=label, shrink=0.8)
    ax.set_xticks(range(count), names, rotation=45 if max(map(len, names)) > 2 else 0)
    ax.set_yticks(range(count), names)
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    if annotate if annotate is not None else count <= 30:
        size = 9 if count <= 12 else 7
        for t in range(count):
            for p in range(count):
                text = str(int(counts[t, p]))
                if normalize is not None and counts[t, p]:
                    text += f"\n{values[t, p]:.0%}"
                if not counts[t, p]:
                    colour = "#9a9a9a"
                else:
                    colour = "white" if values[t, p] > 0.55 * vmax else "black"
                ax.text(p, t, text, ha="center", va="center", fontsize=size, color=colour)
    correct = int(np.trace(counts))
    total_count = int(counts.sum())
    if title is None:
        title = (
            f"confusion matrix: accuracy {correct / total_count:.4f} "
            f"({correct:,} of {total_count:,})"
        )
    ax.set_title(title, fontsize=10)
    return fig


def _display_images(images: Any) -> np.ndarray:
    host = _host(images, "images")
    if host.ndim == 3:
        host = host[:, None]
    if host.ndim != 4 or host.shape[1] not in (1, 3):
        raise ValueError(
            f"images: expected (N, H, W), (N, 1, H, W) or (N, 3, H, W), got shape {host.shape}"
        )
    return host


def plot_predictions(
    images: Any,
    targets: Any | None,
    predictions: Any,
    probabilities: Any | None = None,
    *,
    class_names: Sequence[str] | None = None,
    only_mistakes: bool = False,
    max_images: int | None = 25,
    columns: int | None = None,
    cmap: str = "gray",
    title: str | None = None,
    figsize: tuple[float, float] | None = None,
) -> Figure:
    """Draw sample images titled with the predicted and the true class; mistakes in red.

    Parameters
    ----------
    images : array
        ``(N, H, W)``, ``(N, 1, H, W)`` (drawn in ``cmap``, each on its own scale) or
        ``(N, 3, H, W)`` (drawn in colour, each rescaled to [0, 1]), of any backend.
    targets : array or None
        True class indices ``(N,)``; ``None`` for unlabelled images (nothing is marked).
    predictions : array
        Predicted class indices ``(N,)``, or scores ``(N, K)`` whose argmax is taken.
    probabilities : array, optional
        ``(N, K)`` class probabilities (the predicted class's is shown), or ``(N,)`` the
        confidence of each prediction.
    class_names : sequence of str, optional
        Names for the class indices (default: the indices).
    only_mistakes : bool, default False
        Draw only the wrongly classified images.
    max_images : int or None, default 25
        Draw the first this many (``None``: all).
    columns : int, optional
        Images per row (default: up to 5, or the square root of the number drawn).
    cmap : str, default "gray"
    title : str, optional
    figsize : (float, float), optional

    Returns
    -------
    matplotlib.figure.Figure
        Tile axes carry labels ``"image i"`` (``i`` the index in ``images``); a mistake's
        title and frame are in :data:`MISTAKE_COLOR`.

    Raises
    ------
    ValueError
        For images of another shape, arrays of different lengths, or ``only_mistakes``
        without targets.
    """
    shown_images = _display_images(images)
    count = shown_images.shape[0]
    predicted = _labels(predictions, "predictions")
    true = None if targets is None else _labels(targets, "targets")
    lengths = {"images": count, "predictions": predicted.shape[0]}
    if true is not None:
        lengths["targets"] = true.shape[0]
    confidence = None
    if probabilities is not None:
        probs = _host(probabilities, "probabilities").astype(np.float64)
        if probs.ndim == 2:
            if predicted.size and int(predicted.max()) >= probs.shape[1]:
                raise ValueError(
                    f"probabilities: {probs.shape[1]} classes, but a prediction is class "
                    f"{int(predicted.max())}"
                )
            lengths["probabilities"] = probs.shape[0]
            if probs.shape[0] == count:
                confidence = probs[np.arange(count), predicted] if count else probs[:, 0]
        elif probs.ndim == 1:
            lengths["probabilities"] = probs.shape[0]
            confidence = probs
        else:
            raise ValueError(
                f"probabilities: expected (N, num_classes) or (N,), got shape {probs.shape}"
            )
    if len(set(lengths.values())) > 1:
        listed = ", ".join(f"{n} {name}" for name, n in lengths.items())
        raise ValueError(f"images, targets, predictions: expected the same length, got {listed}")
    limit = _positive("max_images", max_images, allow_none=True)
    _positive("columns", columns, allow_none=True)
    if only_mistakes and true is None:
        raise ValueError("only_mistakes: needs targets to know which predictions are wrong")
    wrong = np.zeros(count, dtype=bool) if true is None else predicted != true
    indices = np.flatnonzero(wrong) if only_mistakes else np.arange(count)
    if limit is not None:
        indices = indices[:limit]
    names = None if class_names is None else _class_names(class_names, 0)

    def name(k: int) -> str:
        if names is None:
            return str(k)
        return names[k] if k < len(names) else str(k)

    if indices.size == 0:
        fig = _new_figure(_size(figsize, (4.0, 1.5)))
        ax = fig.add_subplot()
        ax.axis("off")
        what = "no mistakes" if only_mistakes else "no images"
        text = title if title is not None else f"{what} among {count} images"
        ax.text(0.5, 0.5, text, ha="center", va="center")
        return fig
    grid_columns = columns or min(int(indices.size), max(5, math.ceil(math.sqrt(indices.size))))
    rows = math.ceil(indices.size / grid_columns)
    height, width = shown_images.shape[2:]
    layout = _Grid(
        rows, grid_columns, (1.1, 1.1 * height / width), gap=(0.2, 0.5), top=0.85, bottom=0.1
    )
    fig = layout.figure(figsize)
    axes = layout.tiles(fig, int(indices.size))
    for ax, index in zip(axes, indices.tolist(), strict=True):
        picture = shown_images[index].astype(np.float64)
        if picture.shape[0] == 1:
            ax.imshow(picture[0], cmap=cmap, interpolation="nearest")
        else:
            low, high = picture.min(), picture.max()
            scaled = (picture - low) / (high - low) if high > low else np.zeros_like(picture)
            ax.imshow(np.moveaxis(scaled, 0, -1), interpolation="nearest")
        ax.set_label(f"image {index}")
        text = f"pred {name(int(predicted[index]))}"
        if confidence is not None:
            text += f" {float(confidence[index]):.0%}"
        if true is not None:
            text += f"\ntrue {name(int(true[index]))}"
        mistake = bool(wrong[index])
        colour = MISTAKE_COLOR if mistake else _CORRECT_COLOR
        ax.set_title(text, fontsize=8, color=colour, fontweight="bold" if mistake else "normal")
        for spine in ax.spines.values():
            spine.set_visible(mistake)
            spine.set_color(MISTAKE_COLOR)
            spine.set_linewidth(2.5)
    if title is None:
        mistakes = int(wrong.sum())
        if true is None:
            title = f"{indices.size} of {count:,} images"
        elif only_mistakes:
            title = f"{indices.size} of the {mistakes} mistakes among {count:,} images"
        else:
            marked = int(wrong[indices].sum())
            title = (
                f"{indices.size} of {count:,} images, {marked} "
                f"mistake{'' if marked == 1 else 's'} among them" + (" (red)" if marked else "")
            )
    layout.title(fig, title)
    return fig
