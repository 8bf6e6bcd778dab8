"""Pictures of a convolution's learned filters."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numpy as np

from .. import nn

if TYPE_CHECKING:
    from matplotlib.figure import Figure

from ._common import _Grid, _host, _positive

# -- filters -----------------------------------------------------------------------------


def conv_layers(model: nn.Module) -> list[tuple[str, nn.Conv2d]]:
    return [(name, m) for name, m in model.named_modules() if isinstance(m, nn.Conv2d)]


def _find_filters(weight_or_module: Any, layer: str | None) -> tuple[np.ndarray, str]:
    """The weight to draw and the name to give it."""
    if isinstance(weight_or_module, nn.Conv2d) and layer is None:
        return _host(weight_or_module.weight, "weight_or_module"), "Conv2d"
    if isinstance(weight_or_module, nn.Module):
        convs = conv_layers(weight_or_module)
        if not convs:
            raise ValueError(
                f"weight_or_module: {type(weight_or_module).__name__} has no Conv2d layer"
            )
        if layer is None:
            name, conv = convs[0]
        else:
            found = dict(weight_or_module.named_modules())
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
        ``"3.body.0"``, as in ``model.named_modules()``). Default: the first Conv2d.
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
