"""Pictures of what each layer makes of one input: its feature maps."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import array_api_compat
import numpy as np

from .. import backends, nn

if TYPE_CHECKING:
    from matplotlib.figure import Figure

from ._common import _Grid, _host, _positive

# -- feature maps --------------------------------------------------------------------------


def _model_name(model: nn.Module) -> str:
    """The architecture's name where :func:`xpnet.models.build_model` recorded it."""
    return str(getattr(model, "architecture", type(model).__name__))


def layer_chain(module: nn.Module, prefix: str = "") -> list[tuple[str, nn.Module]]:
    """The layers a Sequential model runs one after another (nested ones flattened)."""
    if isinstance(module, nn.Sequential):
        found: list[tuple[str, nn.Module]] = []
        for name, child in module.named_children():
            found += layer_chain(child, f"{prefix}.{name}" if prefix else name)
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
    params = list(model.parameters())
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
        named as in ``model.named_modules()``); another module counts as one layer.
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
    chain = layer_chain(model)
    chosen = _select_layers(chain, layers)
    x = _model_input(model, image)
    first = backends.to_numpy(x)[0]
    outputs: dict[int, tuple[str, np.ndarray]] = {}
    last = len(chain) - 1 if chosen is None else max(chosen, default=-1)
    modes = [(module, module.training) for module in model.modules()]
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
