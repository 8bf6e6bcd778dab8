"""Pictures of a network and its training: filters, feature maps, curves, confusions.

Every function takes arrays of any backend (they are copied to the host with
:func:`xpnet.to_numpy`) and returns a :class:`matplotlib.figure.Figure`. Figures are built
directly, never through ``pyplot``: nothing global changes, no window opens, and they can
be drawn in threads and on machines without a display. Write one with :func:`save_figure`
(atomically), or all of them at once after training with :func:`save_training_plots`,
which is what ``xpnet train --plots DIR`` does.

matplotlib is an optional dependency (``pip install 'xpnet[viz]'``); it is imported when a
function first draws, so ``import xpnet.viz`` costs nothing without it. For example::

    from xpnet import viz

    history = xpnet.fit(model, optimizer, train_loader, 5, test_loader=test_loader)
    viz.save_figure(viz.plot_filters(model), "filters.png")
    viz.save_training_plots(model, history, test_loader, "plots")
"""

from __future__ import annotations

import math
import os
import threading
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import array_api_compat
import numpy as np

from . import backends, nn
from .data import DataLoader, Dataset

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = [
    "MISTAKE_COLOR",
    "TRAINING_PICTURES",
    "plot_confusion_matrix",
    "plot_feature_maps",
    "plot_filters",
    "plot_predictions",
    "plot_training_curves",
    "require_matplotlib",
    "save_figure",
    "save_training_plots",
    "training_figures",
]

#: Colour of the title and frame of a wrongly classified image in :func:`plot_predictions`.
MISTAKE_COLOR = "#d62728"
#: The pictures :func:`training_figures` draws (and ``--plots`` writes), in order.
TRAINING_PICTURES = (
    "filters",
    "feature_maps",
    "training_curves",
    "confusion_matrix",
    "predictions",
    "mistakes",
)
_CORRECT_COLOR = "#222222"
_TEST_COLOR = "#ff7f0e"
_TRAIN_COLOR = "#1f77b4"
_INSTALL = "pip install 'xpnet[viz]'"


def require_matplotlib() -> None:
    """Check that matplotlib can be imported.

    Raises
    ------
    ImportError
        When it cannot, saying how to install it (``pip install 'xpnet[viz]'``).
    """
    _figure_class()


def _figure_class() -> type[Figure]:
    try:
        from matplotlib.figure import Figure
    except ImportError as exc:
        raise ImportError(
            f"xpnet.viz draws with matplotlib, which is not installed ({exc}): {_INSTALL}"
        ) from None
    return Figure


def _new_figure(figsize: tuple[float, float]) -> Figure:
    return _figure_class()(figsize=figsize, layout="constrained")


def _size(value: tuple[float, float] | None, default: tuple[float, float]) -> tuple[float, float]:
    if value is None:
        return default
    if len(value) != 2 or not all(isinstance(v, int | float) and v > 0 for v in value):
        raise ValueError(f"figsize: expected (width, height) in inches > 0, got {value!r}")
    return float(value[0]), float(value[1])


def _positive(name: str, value: Any, allow_none: bool = False) -> int | None:
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name}: expected a positive int, got {value!r}")
    return value


def _host(value: Any, name: str) -> np.ndarray:
    """``value`` (array of any backend, or nested sequence) as a NumPy array."""
    try:
        return np.asarray(backends.to_numpy(value))
    except (TypeError, ValueError) as exc:
        raise TypeError(f"{name}: expected an array, got {type(value).__name__} ({exc})") from None


class _Grid:
    """Tiles placed at fixed sizes in inches (constrained layout is slow with many axes).

    Rows run from the top; ``left`` leaves room for row labels, ``right`` for colour bars.
    """

    def __init__(
        self,
        rows: int,
        columns: int,
        tile: tuple[float, float],
        *,
        gap: tuple[float, float] = (0.12, 0.3),
        left: float = 0.15,
        right: float = 0.15,
        top: float = 0.55,
        bottom: float = 0.15,
    ) -> None:
        self.rows, self.columns, self.tile, self.gap = rows, columns, tile, gap
        self.left, self.top = left, top
        self.grid_width = columns * tile[0] + (columns - 1) * gap[0]
        self.grid_height = rows * tile[1] + (rows - 1) * gap[1]
        self.size = (left + self.grid_width + right, top + self.grid_height + bottom)

    def figure(self, figsize: tuple[float, float] | None) -> Figure:
        fig = _figure_class()(figsize=_size(figsize, self.size))
        return fig

    def add(self, fig: Figure, x: float, y: float, width: float, height: float) -> Axes:
        """Axes at ``x`` inches from the left and ``y`` inches from the top (of the natural
        size; a ``figsize`` given by the caller stretches the layout)."""
        total_w, total_h = self.size
        rect = (x / total_w, 1 - (y + height) / total_h, width / total_w, height / total_h)
        return fig.add_axes(rect)

    def tile_axes(self, fig: Figure, row: int, column: int) -> Axes:
        x = self.left + column * (self.tile[0] + self.gap[0])
        y = self.top + row * (self.tile[1] + self.gap[1])
        ax = self.add(fig, x, y, *self.tile)
        ax.set_xticks([])
        ax.set_yticks([])
        return ax

    def tiles(self, fig: Figure, count: int) -> list[Axes]:
        return [self.tile_axes(fig, *divmod(k, self.columns)) for k in range(count)]

    def colorbar_axes(self, fig: Figure, row: int | None = None, used: int | None = None) -> Axes:
        """A thin axes right of the grid: centred on the whole grid, or beside one row
        (after its first ``used`` tiles)."""
        x = self.left + self.grid_width + 0.15
        if used is not None:
            x -= (self.columns - used) * (self.tile[0] + self.gap[0])
        if row is None:
            height = min(self.grid_height, max(1.2, 0.7 * self.grid_height))
            y = self.top + (self.grid_height - height) / 2
        else:
            height = self.tile[1]
            y = self.top + row * (self.tile[1] + self.gap[1])
        ax = self.add(fig, x, y, 0.12, height)
        ax.set_label("<colorbar>")  # as matplotlib names the colour bars it places
        return ax

    def title(self, fig: Figure, text: str, fontsize: float = 10) -> None:
        fig.suptitle(text, fontsize=fontsize, y=1 - 0.08 / self.size[1], va="top")


# -- filters -----------------------------------------------------------------------------


def _conv_layers(model: nn.Module) -> list[tuple[str, nn.Conv2d]]:
    return [(name, m) for name, m in model.modules() if isinstance(m, nn.Conv2d)]


def _find_filters(weight_or_module: Any, layer: str | None) -> tuple[np.ndarray, str]:
    """The weight to draw and the name to give it."""
    if isinstance(weight_or_module, nn.Conv2d) and layer is None:
        return _host(weight_or_module.weight, "weight_or_module"), "Conv2d"
    if isinstance(weight_or_module, nn.Module):
        convs = _conv_layers(weight_or_module)
        if not convs:
            raise ValueError(
                f"weight_or_module: {type(weight_or_module).__name__} has no Conv2d layer"
            )
        if layer is None:
            name, conv = convs[0]
        else:
            found = dict(weight_or_module.modules())
            if layer not in found:
                known = ", ".join(repr(n) for n, _ in convs)
                raise ValueError(
                    f"layer: no layer named {layer!r} in the model; its Conv2d layers are {known}"
                )
            chosen = found[layer]
            if not isinstance(chosen, nn.Conv2d):
                raise ValueError(f"layer: {layer!r} is a {type(chosen).__name__}, not a Conv2d")
            name, conv = layer, chosen
        return _host(conv.weight, "weight_or_module"), f"layer {name} (Conv2d)"
    if layer is not None:
        raise ValueError("layer: only applies when weight_or_module is a Module")
    weight = _host(weight_or_module, "weight_or_module")
    if weight.ndim != 4:
        raise ValueError(
            "weight_or_module: expected a Conv2d, a model holding one, or a 4-D weight "
            f"(out_channels, in_channels, kH, kW), got an array of shape {weight.shape}"
        )
    return weight, "weight"


def plot_filters(
    weight_or_module: Any,
    *,
    layer: str | None = None,
    input_channels: str | int = "auto",
    max_filters: int | None = 64,
    columns: int | None = None,
    cmap: str = "RdBu_r",
    title: str | None = None,
    figsize: tuple[float, float] | None = None,
) -> Figure:
    """Draw the learned filters of a convolution as a grid of small images.

    One tile per output channel (filter), all on one colour scale symmetric around 0 (a
    diverging colour map: by default red positive, blue negative, white zero), with one
    colour bar, so that filters can be compared with each other.

    Parameters
    ----------
    weight_or_module : Conv2d, Module or array
        A :class:`~xpnet.nn.Conv2d`, a model holding one (its first, or ``layer``), or a
        weight array ``(out_channels, in_channels, kH, kW)`` of any backend.
    layer : str, optional
        With a model: the qualified name of the Conv2d layer to draw (``"3"``,
        ``"3.body.0"``, as in ``model.modules()``). Default: the first Conv2d.
    input_channels : {"auto", "all", "mean"} or int, default "auto"
        How filters with several input channels are shown. ``"all"``: one row per filter,
        one column per input channel (each ``weight[o, i]``). ``"mean"``: one tile per
        filter, the mean over its input channels (a summary: opposite weights cancel). An
        int ``i``: one tile per filter, its input channel ``i``. ``"auto"``: ``"all"`` when
        that makes at most 128 tiles, else ``"mean"``. With one input channel every choice
        draws ``weight[o, 0]``.
    max_filters : int or None, default 64
        Draw at most the first this many filters (``None``: all).
    columns : int, optional
        Tiles per row when there is one tile per filter (default: up to 8).
    cmap : str, default "RdBu_r"
        A diverging matplotlib colour map.
    title : str, optional
        Default: the layer's name, weight shape and what is shown.
    figsize : (float, float), optional
        In inches; default from the number of tiles.

    Returns
    -------
    matplotlib.figure.Figure
        Tile axes carry labels ``"filter o"`` (or ``"filter o, input i"`` with ``"all"``)
        and one image each, the values drawn.

    Raises
    ------
    ValueError
        For a weight that is not 4-D, a model without Conv2d layers, an unknown or
        non-convolution ``layer``, or an invalid ``input_channels``.
    ImportError
        When matplotlib is missing.
    """
    weight, name = _find_filters(weight_or_module, layer)
    weight = weight.astype(np.float64)
    limit = _positive("max_filters", max_filters, allow_none=True)
    _positive("columns", columns, allow_none=True)
    out_channels, in_channels, kh, kw = weight.shape
    if out_channels == 0 or in_channels == 0:
        raise ValueError(f"weight_or_module: the weight has no filters (shape {weight.shape})")
    shown = out_channels if limit is None else min(out_channels, limit)
    mode = input_channels
    if isinstance(mode, bool) or not (
        mode in ("auto", "all", "mean") or (isinstance(mode, int) and 0 <= mode < in_channels)
    ):
        raise ValueError(
            "input_channels: expected 'auto', 'all', 'mean' or an input channel from 0 to "
            f"{in_channels - 1}, got {input_channels!r}"
        )
    if in_channels == 1:
        mode = 0
    elif mode == "auto":
        mode = "all" if shown * in_channels <= 128 else "mean"
    kept = weight[:shown]
    if mode == "all":
        tiles = [kept[o, i] for o in range(shown) for i in range(in_channels)]
        labels = [f"filter {o}, input {i}" for o in range(shown) for i in range(in_channels)]
        grid_columns = in_channels
        what = "rows: filters, columns: input channels"
    else:
        planes = kept.mean(axis=1) if mode == "mean" else kept[:, int(mode)]
        tiles = list(planes)
        labels = [f"filter {o}" for o in range(shown)]
        grid_columns = columns or min(shown, 8)
        what = (
            f"mean over {in_channels} input channels"
            if mode == "mean"
            else ("" if in_channels == 1 else f"input channel {mode}")
        )
    rows = math.ceil(len(tiles) / grid_columns)
    side = 0.7 if max(kh, kw) <= 3 else 0.9 if max(kh, kw) <= 7 else 1.1
    if mode == "all" and rows > 8:
        side *= 0.7
    layout = _Grid(
        rows,
        grid_columns,
        (side, side * kh / kw),
        gap=(0.08, 0.25 if mode != "all" else 0.08),
        left=0.45 if mode == "all" else 0.15,
        right=1.0,
        top=(0.95 if mode == "all" else 0.75) - (0.0 if what else 0.2),
    )
    fig = layout.figure(figsize)
    axes = layout.tiles(fig, len(tiles))
    vmax = float(np.max(np.abs(np.stack(tiles)))) or 1.0
    image = None
    for k, (ax, tile, label) in enumerate(zip(axes, tiles, labels, strict=True)):
        image = ax.imshow(tile, cmap=cmap, vmin=-vmax, vmax=vmax, interpolation="nearest")
        ax.set_label(label)
        if mode == "all":
            o, i = divmod(k, in_channels)
            if i == 0:
                ax.set_ylabel(str(o), rotation=0, ha="right", va="center", fontsize=8)
            if o == 0:
                ax.set_title(f"in {i}", fontsize=8)
        else:
            ax.set_title(str(k), fontsize=8, pad=3)
    assert image is not None
    fig.colorbar(image, cax=layout.colorbar_axes(fig), label="weight")
    heading = f"{name}: weight {tuple(int(n) for n in weight.shape)}"
    if shown < out_channels:
        heading += f", first {shown} of {out_channels} filters"
    if what:
        heading += f"\n{what}"
    layout.title(fig, title if title is not None else heading)
    return fig


# -- feature maps --------------------------------------------------------------------------


def _model_name(model: nn.Module) -> str:
    """The architecture's name where :func:`xpnet.models.build_model` recorded it."""
    return str(getattr(model, "architecture", type(model).__name__))


def _chain(module: nn.Module, prefix: str = "") -> list[tuple[str, nn.Module]]:
    """The layers a Sequential model runs one after another (nested ones flattened)."""
    if isinstance(module, nn.Sequential):
        found: list[tuple[str, nn.Module]] = []
        for name, child in module.children():
            found += _chain(child, f"{prefix}.{name}" if prefix else name)
        return found
    return [(prefix or type(module).__name__, module)]


def _model_input(model: nn.Module, image: Any) -> Any:
    """One image as a batch of one on the model's namespace, device and dtype."""
    given = tuple(image.shape) if hasattr(image, "shape") else np.shape(image)
    if len(given) not in (2, 3, 4):
        raise ValueError(
            "image: expected one image (H, W), (C, H, W) or (1, C, H, W), got shape "
            f"{tuple(int(n) for n in given)}"
        )
    params = list(model.named_parameters().values())
    if params:
        xp = array_api_compat.array_namespace(params[0])
        device, dtype = array_api_compat.device(params[0]), params[0].dtype
        if array_api_compat.is_array_api_obj(image) and (
            array_api_compat.array_namespace(image) is xp
        ):
            x = image
        else:
            host = _host(image, "image")
            x = xp.asarray(host if host.flags.writeable else host.copy(), device=device)
        x = xp.astype(x, dtype)
    elif array_api_compat.is_array_api_obj(image):
        xp = array_api_compat.array_namespace(image)
        x = image if xp.isdtype(image.dtype, "real floating") else xp.astype(image, xp.float32)
    else:
        x = backends.asarray(_host(image, "image"), dtype="float32")
        xp = array_api_compat.array_namespace(x)
    shape = tuple(int(n) for n in x.shape)
    if len(shape) == 2:
        x = xp.reshape(x, (1, 1, *shape))
    elif len(shape) == 3:
        x = xp.reshape(x, (1, *shape))
    elif shape[0] != 1:
        raise ValueError(f"image: expected one image, got a batch of {shape[0]} (shape {shape})")
    return x


def _select_layers(
    chain: list[tuple[str, nn.Module]], layers: Sequence[str | int] | None
) -> list[int] | None:
    if layers is None:
        return None
    if isinstance(layers, str | int):
        layers = [layers]
    names = [name for name, _ in chain]
    chosen = []
    for item in layers:
        if isinstance(item, int) and not isinstance(item, bool):
            if not -len(chain) <= item < len(chain):
                raise ValueError(
                    f"layers: index {item} is out of range for a model of {len(chain)} layers"
                )
            chosen.append(item % len(chain))
        elif isinstance(item, str) and item in names:
            chosen.append(names.index(item))
        else:
            known = ", ".join(f"{n} ({type(m).__name__})" for n, m in chain)
            raise ValueError(f"layers: unknown layer {item!r}; the model's layers are {known}")
    return chosen


def plot_feature_maps(
    model: nn.Module,
    image: Any,
    *,
    layers: Sequence[str | int] | None = None,
    max_channels: int | None = 8,
    show_input: bool = True,
    cmap: str = "viridis",
    title: str | None = None,
    figsize: tuple[float, float] | None = None,
) -> Figure:
    """Draw what one input becomes after each layer of a model: one row per layer.

    The model runs in inference mode (batch norm on its running statistics, dropout off;
    every module's mode is restored afterwards). Each row shows the first channels of a
    layer's output ``(1, C, H, W)``, on one colour scale per row with its colour bar, and is
    labelled with the layer's name, type and output shape.

    Parameters
    ----------
    model : Module
        A :class:`~xpnet.nn.Sequential` model (nested ones are flattened into their layers,
        named as in ``model.modules()``); another module counts as one layer.
    image : array
        One input, ``(H, W)``, ``(C, H, W)`` or ``(1, C, H, W)``, of any backend, already
        normalised as the model expects. It is moved to the model's backend, device and
        dtype.
    layers : sequence of str or int, optional
        The layers to draw, by qualified name (``"0"``, ``"3.body.1"``) or by position in
        the flattened model. Default: every layer whose output is a 4-D feature map.
    max_channels : int or None, default 8
        Draw at most this many channels per layer (``None``: all).
    show_input : bool, default True
        Draw the input as the first row.
    cmap : str, default "viridis"
    title : str, optional
    figsize : (float, float), optional

    Returns
    -------
    matplotlib.figure.Figure
        Tile axes carry labels ``"<layer>:<channel>"`` (``"input:0"`` for the input) and
        one image each, the values drawn.

    Raises
    ------
    ValueError
        For an image that is not one image, an unknown layer, a chosen layer whose output
        is not ``(1, C, H, W)``, or a model with no such layer.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model: expected an xpnet Module, got {type(model).__name__}")
    limit = _positive("max_channels", max_channels, allow_none=True)
    chain = _chain(model)
    chosen = _select_layers(chain, layers)
    x = _model_input(model, image)
    first = backends.to_numpy(x)[0]
    outputs: dict[int, tuple[str, np.ndarray]] = {}
    last = len(chain) - 1 if chosen is None else max(chosen, default=-1)
    modes = [(module, module.training) for _, module in model.modules()]
    model.eval()
    try:
        for index, (name, layer) in enumerate(chain[: last + 1]):
            try:
                x = layer(x)
            except (ValueError, TypeError) as exc:
                raise type(exc)(f"layer {name} ({type(layer).__name__}): {exc}") from exc
            if chosen is not None and index in chosen and len(x.shape) != 4:
                raise ValueError(
                    f"layers: {name} ({type(layer).__name__}) gives an output of shape "
                    f"{tuple(int(n) for n in x.shape)}, not a feature map (1, C, H, W)"
                )
            if len(x.shape) == 4 and (chosen is None or index in chosen):
                outputs[index] = (f"{name} {type(layer).__name__}", backends.to_numpy(x)[0])
    finally:
        for module, mode in modes:
            object.__setattr__(module, "training", mode)
    if not outputs:
        raise ValueError(
            "model: none of its layers gives a 4-D feature map (layers: "
            f"{', '.join(f'{n} ({type(m).__name__})' for n, m in chain)})"
        )
    rows = [("input", first)] if show_input else []
    rows += [outputs[index] for index in (sorted(outputs) if chosen is None else chosen)]
    counts = [maps.shape[0] if limit is None else min(maps.shape[0], limit) for _, maps in rows]
    columns = max(counts)
    height, width = max(m.shape[1] for _, m in rows), max(m.shape[2] for _, m in rows)
    aspect = height / max(width, 1)
    side = 0.9
    layout = _Grid(
        len(rows),
        columns,
        (side, side * aspect),
        gap=(0.08, 0.28),
        left=1.35,
        right=0.75,
        top=0.55,
    )
    fig = layout.figure(figsize)
    for r, ((label, maps), count) in enumerate(zip(rows, counts, strict=True)):
        vmin, vmax = float(maps[:count].min()), float(maps[:count].max())
        if vmax == vmin:
            vmin, vmax = vmin - 0.5, vmax + 0.5
        name = label.split(" ")[0]
        image_ = None
        for c in range(count):
            ax = layout.tile_axes(fig, r, c)
            image_ = ax.imshow(
                maps[c].astype(np.float64), cmap=cmap, vmin=vmin, vmax=vmax, interpolation="nearest"
            )
            ax.set_label(f"{name}:{c}")
            ax.set_title(str(c), fontsize=7, pad=2)
            if c == 0:
                shape = "x".join(str(int(n)) for n in maps.shape)
                more = f"\n(first {count})" if count < maps.shape[0] else ""
                ax.set_ylabel(
                    f"{label}\n{shape}{more}", rotation=0, ha="right", va="center", fontsize=8
                )
        assert image_ is not None
        bar = fig.colorbar(image_, cax=layout.colorbar_axes(fig, r, count))
        bar.ax.tick_params(labelsize=6)
    layout.title(
        fig, title if title is not None else f"feature maps of one input ({_model_name(model)})"
    )
    return fig


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
    target.parent.mkdir(parents=True, exist_ok=True)
    # A unique name, created with open() so that it gets the mode any new file gets.
    temporary = target.with_name(
        f".{target.name}.{os.getpid()}.{threading.get_ident()}.{uuid.uuid4().hex[:8]}.tmp"
    )
    try:
        with open(temporary, "xb") as stream:
            fig.savefig(stream, format=kind, dpi="figure" if dpi is None else dpi)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temporary, target)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
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
    modes = [(module, module.training) for _, module in model.modules()]
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
        params = list(model.named_parameters().values())
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
        "filters": bool(_conv_layers(model)),
        "feature_maps": any(
            isinstance(m, nn.Conv2d | nn.MaxPool2d | nn.AvgPool2d | nn.AdaptiveAvgPool2d)
            for _, m in _chain(model)
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
