"""Pictures of training: loss and accuracy per epoch."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from matplotlib.figure import Figure

from ._common import _TEST_COLOR, _TRAIN_COLOR, _new_figure, _size

# -- training curves -----------------------------------------------------------------------


def plot_training_curves(
    history: Sequence[Mapping[str, float]],
    *,
    title: str | None = None,
    figsize: tuple[float, float] | None = None,
) -> Figure:
    """Draw loss and accuracy per epoch, for training and test data, from :func:`xpnet.fit`.

    Parameters
    ----------
    history : sequence of mapping
        One record per epoch, as :func:`xpnet.fit` returns (or a checkpoint's
        ``meta["history"]``): ``loss`` is required; ``accuracy``, ``test_loss``,
        ``test_accuracy`` and ``epoch`` are drawn when present (``epoch`` defaults to
        1, 2, ...).
    title : str, optional
        Default: the final test (else training) accuracy.
    figsize : (float, float), optional

    Returns
    -------
    matplotlib.figure.Figure
        Two axes, ``"loss"`` and ``"accuracy"`` (the second only with accuracies), each
        with lines labelled ``"train"`` and ``"test"``.

    Raises
    ------
    ValueError
        For an empty history, or a record without ``loss`` or with a non-numeric value.
    """
    if isinstance(history, Mapping) or not isinstance(history, Sequence) or not history:
        raise ValueError(
            "history: expected a non-empty list of per-epoch records (what fit() returns), "
            f"got {history!r:.80}"
        )
    for k, record in enumerate(history):
        if not isinstance(record, Mapping) or "loss" not in record:
            raise ValueError(
                f"history[{k}]: expected a mapping with at least 'loss', got {record!r:.80}"
            )
        for key in ("epoch", "loss", "accuracy", "test_loss", "test_accuracy"):
            value = record.get(key)
            if value is not None and (
                isinstance(value, bool) or not isinstance(value, int | float)
            ):
                raise ValueError(f"history[{k}][{key!r}]: expected a number, got {value!r}")
    epochs = [float(r.get("epoch", k + 1)) for k, r in enumerate(history)]
    has_accuracy = any("accuracy" in r or "test_accuracy" in r for r in history)
    panels = ["loss", "accuracy"] if has_accuracy else ["loss"]
    fig = _new_figure(_size(figsize, (5.0 * len(panels) + 0.4, 3.8)))
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    from matplotlib.ticker import MaxNLocator

    for ax, metric in zip(axes, panels, strict=True):
        for prefix, label, colour in (("", "train", _TRAIN_COLOR), ("test_", "test", _TEST_COLOR)):
            key = prefix + metric
            points = [(e, float(r[key])) for e, r in zip(epochs, history, strict=True) if key in r]
            if points:
                xs, ys = zip(*points, strict=True)
                ax.plot(xs, ys, marker="o", markersize=4, color=colour, label=label)
        ax.set_label(metric)
        ax.set_xlabel("epoch")
        ax.set_ylabel(metric)
        ax.set_title(metric, fontsize=10)
        if len(set(epochs)) <= 12:
            ax.set_xticks(sorted(set(epochs)), [f"{e:g}" for e in sorted(set(epochs))])
            if len(set(epochs)) == 1:
                ax.set_xlim(epochs[0] - 1, epochs[0] + 1)
        else:
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(True, alpha=0.3)
        if ax.lines:
            ax.legend()
    if title is None:
        last = history[-1]
        if "test_accuracy" in last:
            title = f"final test accuracy {float(last['test_accuracy']):.4f}"
        elif "accuracy" in last:
            title = f"final training accuracy {float(last['accuracy']):.4f}"
        else:
            title = f"final loss {float(last['loss']):.4f}"
    fig.suptitle(title, fontsize=11)
    return fig
