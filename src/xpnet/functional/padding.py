"""``pad``: constant, reflect, replicate and circular padding, as ``torch.nn.functional.pad``.

The standard has no padding function: each padded axis is a concatenation of the input
with its border (a constant block, mirrored or repeated edge slices, or the far end), and
the pullback folds each border's cotangent back onto the entries it was read from. One
axis at a time, so the pullback undoes the axes in reverse order.
"""

from __future__ import annotations

import numbers
from collections.abc import Sequence
from typing import Any

from .._numbers import integer
from ._autodiff import Pullback, defvjp, primitive
from ._validation import check_float, namespace_of
from ._windows import pad_axis

__all__ = ["pad", "pad_one"]

PAD_MODES = ("constant", "reflect", "replicate", "circular")


def _axis_slice(ndim: int, axis: int, index: slice) -> tuple[Any, ...]:
    return (slice(None),) * axis + (index,) + (slice(None),) * (ndim - axis - 1)


def _check(input: Any, pad: Any, mode: Any, value: Any) -> tuple[Any, list[tuple[int, int, int]]]:
    """Check the arguments; return the namespace and ``(axis, before, after)`` per padded
    axis, innermost first (torch's order: the last axis's pair comes first)."""
    xp = namespace_of(input=input)
    if mode not in PAD_MODES:
        raise ValueError(f"mode: expected one of {', '.join(map(repr, PAD_MODES))}, got {mode!r}")
    if (
        isinstance(pad, str)
        or not isinstance(pad, Sequence)
        or not all(integer(p) is not None for p in pad)
    ):
        raise TypeError(f"pad: expected a sequence of ints, got {pad!r}")
    pad = [int(integer(p) or 0) for p in pad]  # NumPy's ints as Python's, for the arithmetic
    if len(pad) % 2 or len(pad) // 2 > input.ndim:
        raise ValueError(
            f"pad: expected an even number of ints, two per padded axis from the last one, "
            f"for at most {input.ndim} axes (the input's), got {len(pad)}: {tuple(pad)}"
        )
    if mode != "constant":
        if value is not None and value != 0:
            raise ValueError(f"value: only mode 'constant' takes a fill value, got {value!r}")
        axes = len(pad) // 2
        if not 1 <= axes <= 3 or input.ndim not in (axes + 1, axes + 2):
            raise ValueError(
                f"pad: mode {mode!r} pads the last 1, 2 or 3 axes of a (N, C, ...) or (C, ...) "
                f"input; {axes} axes asked of an input of shape {tuple(input.shape)}"
            )
        check_float(xp, "input", input)
    elif value is not None and (isinstance(value, bool) or not isinstance(value, numbers.Real)):
        raise TypeError(f"value: expected a real number, got {type(value).__name__} ({value!r})")
    plan = []
    for k in range(len(pad) // 2):
        axis = input.ndim - 1 - k
        before, after, size = pad[2 * k], pad[2 * k + 1], int(input.shape[axis])
        if mode == "constant":
            if size + before + after < 0:
                raise ValueError(
                    f"pad: ({before}, {after}) on axis {axis} of size {size} leaves a negative "
                    f"size {size + before + after}"
                )
        elif min(before, after) < 0:
            raise ValueError(f"pad: mode {mode!r} takes non-negative pads, got {tuple(pad)}")
        elif mode == "reflect" and max(before, after) >= size:
            raise ValueError(
                f"pad: mode 'reflect' needs pads smaller than the axis, got ({before}, {after}) "
                f"on axis {axis} of size {size}"
            )
        elif mode == "circular" and max(before, after) > size:
            raise ValueError(
                f"pad: mode 'circular' needs pads no larger than the axis, got ({before}, "
                f"{after}) on axis {axis} of size {size}"
            )
        elif mode == "replicate" and size == 0 and before + after > 0:
            raise ValueError(f"pad: mode 'replicate' cannot pad the empty axis {axis}")
        plan.append((axis, before, after))
    return xp, plan


def _fill(xp: Any, input: Any, value: float | None) -> Any:
    """The constant fill in ``input``'s kind of dtype (truncated for integers, as torch)."""
    value = 0 if value is None else value
    if xp.isdtype(input.dtype, "bool"):
        return bool(value)
    if xp.isdtype(input.dtype, "integral"):
        return int(value)
    return float(value)


def _crop(x: Any, axis: int, before: int, after: int) -> Any:
    """Drop ``before`` and ``after`` entries from the ends of ``axis``."""
    return x[_axis_slice(x.ndim, axis, slice(before, int(x.shape[axis]) - after))]


def pad_one(xp: Any, x: Any, axis: int, before: int, after: int, mode: str, value: Any) -> Any:
    """``x`` padded on one ``axis`` by ``mode`` (one of :data:`PAD_MODES`; ``value`` fills
    the constant mode), any dtype: the standard ops :func:`pad` records as one step."""
    size = int(x.shape[axis])
    if mode == "constant":
        # A negative pad crops, as in torch.
        x = _crop(x, axis, max(-before, 0), max(-after, 0))
        return pad_axis(xp, x, axis, max(before, 0), max(after, 0), value)
    if before == 0 and after == 0:
        return x

    def part(index: slice) -> Any:
        return x[_axis_slice(x.ndim, axis, index)]

    if mode == "reflect":  # mirrored about the edge entries, which are not repeated
        head = xp.flip(part(slice(1, before + 1)), axis=axis)
        tail = xp.flip(part(slice(size - 1 - after, size - 1)), axis=axis)
    elif mode == "replicate":  # the edge entry repeated
        head = xp.broadcast_to(part(slice(0, 1)), _resized(x, axis, before))
        tail = xp.broadcast_to(part(slice(size - 1, size)), _resized(x, axis, after))
    else:  # circular: the far end wraps around
        head = part(slice(size - before, size))
        tail = part(slice(0, after))
    return xp.concat([head, x, tail], axis=axis)


def _resized(x: Any, axis: int, size: int) -> tuple[int, ...]:
    shape = [int(n) for n in x.shape]
    shape[axis] = size
    return tuple(shape)


def _unpad_one(xp: Any, dy: Any, axis: int, before: int, after: int, mode: str, size: int) -> Any:
    """The pullback of :func:`_pad_one` for an input axis of ``size`` entries."""
    if mode == "constant":
        dx = _crop(dy, axis, max(before, 0), max(after, 0))
        return pad_axis(xp, dx, axis, max(-before, 0), max(-after, 0), 0.0)
    if before == 0 and after == 0:
        return dy
    total = int(dy.shape[axis])
    head = dy[_axis_slice(dy.ndim, axis, slice(0, before))]
    tail = dy[_axis_slice(dy.ndim, axis, slice(total - after, total))]
    dx = _crop(dy, axis, before, after)
    if mode == "reflect":
        dx = dx + pad_axis(xp, xp.flip(head, axis=axis), axis, 1, size - 1 - before, 0.0)
        return dx + pad_axis(xp, xp.flip(tail, axis=axis), axis, size - 1 - after, 1, 0.0)
    if mode == "circular":
        dx = dx + pad_axis(xp, head, axis, size - before, 0, 0.0)
        return dx + pad_axis(xp, tail, axis, 0, size - after, 0.0)
    # replicate: every repeat of an edge entry sends its cotangent to that entry
    first = xp.sum(head, axis=axis, keepdims=True)
    last = xp.sum(tail, axis=axis, keepdims=True)
    return (
        dx
        + pad_axis(xp, first, axis, 0, size - 1, 0.0)
        + pad_axis(xp, last, axis, size - 1, 0, 0.0)
    )


@primitive
def pad(input: Any, pad: Sequence[int], mode: str = "constant", value: float | None = None) -> Any:
    """Pad the last axes of ``input``, as ``torch.nn.functional.pad``.

    Parameters
    ----------
    input : array
        Any shape. Modes other than ``'constant'`` pad the last 1, 2 or 3 axes of a
        ``(N, C, ...)`` or ``(C, ...)`` floating-point array.
    pad : sequence of int
        Two ints per padded axis, the last axis first: ``(left, right)``, then
        ``(top, bottom)``, then ``(front, back)``, and so on. In ``'constant'`` mode a
        negative pad removes entries.
    mode : {'constant', 'reflect', 'replicate', 'circular'}, default 'constant'
        ``'reflect'`` mirrors about the edge without repeating it (pads smaller than the
        axis), ``'replicate'`` repeats the edge, ``'circular'`` wraps the far end around
        (pads no larger than the axis).
    value : float, optional
        The fill of ``'constant'`` mode (default 0); other modes take none.

    Returns
    -------
    array
        ``input``'s dtype, namespace and device; each padded axis grows by its two pads.

    Examples
    --------
    >>> import xpnet, xpnet.functional as F
    >>> x = xpnet.asarray([[[1.0, 2.0, 3.0]]])
    >>> xpnet.to_numpy(F.pad(x, (2, 1), mode="reflect")).tolist()
    [[[3.0, 2.0, 1.0, 2.0, 3.0, 2.0]]]
    """
    xp, plan = _check(input, pad, mode, value)
    fill = _fill(xp, input, value)
    for axis, before, after in plan:
        input = pad_one(xp, input, axis, before, after, mode, fill)
    return input


@defvjp(pad, "input")
def _pad_vjp(
    input: Any, pad: Sequence[int], mode: str = "constant", value: float | None = None
) -> tuple[Any, Pullback]:
    xp, plan = _check(input, pad, mode, value)
    fill = _fill(xp, input, value)
    sizes = []
    y = input
    for axis, before, after in plan:
        sizes.append(int(y.shape[axis]))
        y = pad_one(xp, y, axis, before, after, mode, fill)

    def pullback(dy: Any) -> tuple[Any]:
        for (axis, before, after), size in zip(reversed(plan), reversed(sizes), strict=True):
            dy = _unpad_one(xp, dy, axis, before, after, mode, size)
        return (dy,)

    return y, pullback
