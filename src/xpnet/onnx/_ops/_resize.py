"""Resize and Upsample, by ONNX's definition: one axis at a time, each output position a
weighted sum of gathered input positions.

The coordinates, neighbours and weights depend only on the sizes, so they are computed on
the host (every coordinate transform, nearest rounding and cubic variant of the
operator); the data is only gathered and weighted, which the recorded ``take`` and
products differentiate.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

from ._registry import Call, host_dtype, namespace, operator, shape

__all__: list[str] = []


def _source_coordinates(
    mode: str, out: int, size: int, scale: float, roi: tuple[float, float]
) -> np.ndarray:
    """Where each of the ``out`` output positions ``x`` of an axis reads the input
    (``x_original``), ``scale * size`` being the unrounded output length (ONNX's reference
    implementation's rule)."""
    x: np.ndarray = np.arange(out, dtype=np.float64)
    length = scale * size
    if mode == "half_pixel":
        return (x + 0.5) / scale - 0.5
    if mode == "half_pixel_symmetric":
        offset = size / 2 * (1 - out / length)
        return offset + (x + 0.5) / scale - 0.5
    if mode == "pytorch_half_pixel":
        return (x + 0.5) / scale - 0.5 if length != 1 else np.full(out, -0.5)
    if mode == "align_corners":
        return x * (size - 1) / (length - 1) if length != 1 else np.zeros(out)
    if mode == "asymmetric":
        return x / scale
    if mode == "tf_crop_and_resize":
        start, end = roi
        if length != 1:
            return start * (size - 1) + x * (end - start) * (size - 1) / (length - 1)
        return np.full(out, (start + end) / 2 * (size - 1))
    raise ValueError(mode)


def _nearest(mode: str, coordinates: np.ndarray) -> np.ndarray:
    rounding: dict[str, Callable[[np.ndarray], Any]] = {
        "round_prefer_floor": lambda c: np.ceil(c - 0.5),
        "round_prefer_ceil": lambda c: np.floor(c + 0.5),
        "floor": np.floor,
        "ceil": np.ceil,
    }
    if mode not in rounding:
        raise ValueError(mode)
    return np.asarray(rounding[mode](coordinates))


def _cubic_weights(t: np.ndarray, a: float) -> np.ndarray:
    """The four cubic-convolution weights of neighbours -1, 0, 1, 2 at fraction ``t``."""

    def far(d: np.ndarray) -> np.ndarray:  # 1 <= |d| < 2
        return np.asarray(((a * d - 5 * a) * d + 8 * a) * d - 4 * a)

    def near(d: np.ndarray) -> np.ndarray:  # |d| < 1
        return np.asarray(((a + 2) * d - (a + 3)) * d * d + 1)

    return np.stack([far(t + 1), near(t), near(1 - t), far(2 - t)], axis=-1)


def _taps(
    call: Call, size: int, out: int, scale: float, roi: tuple[float, float]
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """``(indices, weights, outside)`` for one axis: per output position, the input
    positions it gathers and their weights, and where tf_crop_and_resize extrapolates."""
    transform = call.attr("coordinate_transformation_mode", "half_pixel")
    mode = call.attr("mode", "nearest")
    try:
        coordinates = _source_coordinates(transform, out, size, scale, roi)
    except ValueError:
        raise call.unsupported(f"coordinate_transformation_mode {transform!r}") from None
    outside = None
    if transform == "tf_crop_and_resize":
        outside = (coordinates < 0) | (coordinates > size - 1)
    if mode == "nearest":
        nearest_mode = call.attr("nearest_mode", "round_prefer_floor")
        try:
            index = _nearest(nearest_mode, coordinates)
        except ValueError:
            raise call.unsupported(f"nearest_mode {nearest_mode!r}") from None
        indices = np.clip(index, 0, size - 1).astype(np.int64)[:, None]
        return indices, np.ones((out, 1)), outside
    base = np.floor(coordinates)
    t = coordinates - base
    if mode == "linear":
        offsets, weights = np.array([0, 1]), np.stack([1 - t, t], axis=-1)
    elif mode == "cubic":
        offsets = np.array([-1, 0, 1, 2])
        weights = _cubic_weights(t, call.float_attr("cubic_coeff_a", -0.75))
    else:
        raise call.unsupported(f"mode {mode!r}")
    positions = base[:, None].astype(np.int64) + offsets[None, :]
    if mode == "cubic" and call.int_attr("exclude_outside", 0):
        weights = np.where((positions < 0) | (positions >= size), 0.0, weights)
        weights = weights / weights.sum(axis=1, keepdims=True)
    return np.clip(positions, 0, size - 1), weights, outside


def _resize_axis(
    call: Call, x: Any, axis: int, out: int, scale: float, roi: tuple[float, float]
) -> Any:
    xp = namespace(x)
    size = shape(x)[axis]
    indices, weights, outside = _taps(call, size, out, scale, roi)
    dtype = host_dtype(x)
    broadcast = [1] * x.ndim
    broadcast[axis] = out
    y = None
    for tap in range(indices.shape[1]):
        picked = xp.take(x, call.place_host(indices[:, tap], x), axis=axis)
        if not np.all(weights[:, tap] == 1.0):
            factor = np.asarray(weights[:, tap], dtype=dtype).reshape(broadcast)
            picked = picked * call.place_host(factor, x)
        y = picked if y is None else y + picked
    if outside is not None and outside.any():
        value = call.float_attr("extrapolation_value", 0.0)
        mask = call.place_host(outside.reshape(broadcast), x)
        y = xp.where(mask, xp.asarray(value, dtype=x.dtype), y)
    return y


def _resize(call: Call, x: Any, scales: list[float] | None, sizes: list[int] | None,
            roi: list[float] | None, axes: list[int]) -> Any:  # fmt: skip
    dims = shape(x)
    if sizes is not None:
        if len(sizes) != len(axes):
            raise call.fail(f"sizes: expected {len(axes)} values, got {sizes}")
        policy = call.attr("keep_aspect_ratio_policy", "stretch")
        if policy != "stretch":
            ratios = [s / dims[a] for s, a in zip(sizes, axes, strict=True)]
            common = min(ratios) if policy == "not_larger" else max(ratios)
            sizes = [math.floor(dims[a] * common + 0.5) for a in axes]
            scales = [common] * len(axes)
        else:
            scales = [s / dims[a] for s, a in zip(sizes, axes, strict=True)]
    elif scales is not None:
        if len(scales) != len(axes):
            raise call.fail(f"scales: expected {len(axes)} values, got {scales}")
        if any(s <= 0 for s in scales):
            raise call.fail(f"scales: expected positive values, got {scales}")
        sizes = [math.floor(dims[a] * s) for a, s in zip(axes, scales, strict=True)]
    else:
        raise call.fail("one of scales and sizes is required")
    if (
        call.int_attr("antialias", 0)
        and any(s < 1 for s in scales)
        and (call.attr("mode", "nearest") != "nearest")
    ):
        raise call.unsupported("antialiased downsampling")
    for k, axis in enumerate(axes):
        if sizes[k] == dims[axis] and scales[k] == 1.0:
            continue
        span = (0.0, 1.0) if roi is None else (roi[k], roi[k + len(axes)])
        x = _resize_axis(call, x, axis, sizes[k], scales[k], span)
    return x


@operator("Resize", host_inputs=(1, 2, 3))
def _resize_op(call: Call) -> Any:
    x = call.array(0)
    rank = x.ndim
    if call.opset < 11:
        scales_value = call.host(1, "scales")
        scales = None if scales_value is None else [float(s) for s in scales_value.reshape(-1)]
        return _resize(call, x, scales, None, None, list(range(rank)))
    roi_value = call.host(1, "roi")
    scales_value = call.host(2, "scales")
    sizes = call.host_ints(3, "sizes") if call.has(3) else None
    axes = call.ints_attr("axes", None) if call.opset >= 18 else None
    axes = list(range(rank)) if axes is None else [a % rank for a in axes]
    scales = (
        None if scales_value is None or scales_value.size == 0
        else [float(s) for s in scales_value.reshape(-1)]
    )  # fmt: skip
    if sizes is not None and scales is not None:
        raise call.fail("scales and sizes are both given; ONNX takes one")
    roi = None
    if roi_value is not None and roi_value.size:
        roi = [float(r) for r in roi_value.reshape(-1)]
        if len(roi) != 2 * len(axes):
            raise call.fail(f"roi: expected {2 * len(axes)} values, got {len(roi)}")
    return _resize(call, x, scales, sizes, roi, axes)


@operator("Upsample", host_inputs=(1,))
def _upsample(call: Call) -> Any:
    x = call.array(0)
    if call.opset >= 9:
        scales_value = call.host(1, "scales")
        assert scales_value is not None
        scales = [float(s) for s in scales_value.reshape(-1)]
    else:
        scales = [float(s) for s in call.attr("scales")]
    mode = call.attr("mode", "nearest")
    if mode not in ("nearest", "linear", "bilinear"):
        raise call.unsupported(f"mode {mode!r}")
    # Upsample is Resize with asymmetric coordinates, nearest rounding down.
    as_resize = _UpsampleCall(call, "linear" if mode != "nearest" else "nearest")
    return _resize(as_resize, x, scales, None, None, list(range(x.ndim)))


class _UpsampleCall(Call):
    """A view of an Upsample node with the attributes of its Resize equivalent."""

    def __init__(self, call: Call, mode: str) -> None:
        self.__dict__.update(call.__dict__)
        self._overrides = {
            "mode": mode,
            "coordinate_transformation_mode": "asymmetric",
            "nearest_mode": "floor",
        }

    def attr(self, name: str, default: Any = None) -> Any:
        if name in self._overrides:
            return self._overrides[name]
        return super().attr(name, default)
