"""Library-wide settings.

``workspace_bytes`` bounds what a convolution holds besides its inputs and results: its
forward pass and pullback process the batch in chunks whose temporaries (columns, products,
staging copies, the pullback's folds) fit the budget, with the same results, so a forward and
pullback peak at most at budget + output + input gradient + weight gradient (one image's
temporaries when the budget is smaller than that). The gather strategy's index tables, kept
for reuse, are not counted. Change it for the whole process with :func:`set_workspace_bytes`,
or for a block with :func:`workspace`.

``conv_strategy`` forces one way of computing convolutions (:data:`CONV_STRATEGIES`) inside a
block, where xpnet otherwise chooses per shape and device; the results are the same up to
round-off. ``native_kernels`` switches off (or back on) a backend's own kernels inside a
block: where a backend has a kernel of its own for an op (convolutions on PyTorch and JAX,
pooling on PyTorch), xpnet calls it, and the standard path (the definition, and the path on
every other namespace) runs otherwise.
``value_checks`` turns on or off the argument checks that read array values on
the host (such as class targets in range), which xpnet otherwise runs only where such a read
is free.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from contextvars import ContextVar
from typing import TypeVar

_T = TypeVar("_T")

__all__ = [
    "CONV_STRATEGIES",
    "DEFAULT_WORKSPACE_BYTES",
    "conv_strategy",
    "get_conv_strategy",
    "get_native_kernels",
    "get_value_checks",
    "get_workspace_bytes",
    "native_kernels",
    "set_workspace_bytes",
    "value_checks",
    "workspace",
]

DEFAULT_WORKSPACE_BYTES = 256 * 2**20

_global_workspace = DEFAULT_WORKSPACE_BYTES
_workspace: ContextVar[int | None] = ContextVar("xpnet_workspace", default=None)


@contextlib.contextmanager
def _scoped(var: ContextVar[_T], value: _T) -> Iterator[_T]:
    """``var`` set to ``value`` inside the block (thread- and task-local), then restored."""
    token = var.set(value)
    try:
        yield value
    finally:
        var.reset(token)


def _check(n: int) -> int:
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"workspace bytes: expected a positive int, got {n!r}")
    return n


def get_workspace_bytes() -> int:
    """The convolution workspace budget in bytes now in force."""
    local = _workspace.get()
    return _global_workspace if local is None else local


def set_workspace_bytes(n: int) -> None:
    """Set the process-wide convolution workspace budget (default 256 MiB)."""
    global _global_workspace
    _global_workspace = _check(n)


@contextlib.contextmanager
def workspace(n: int) -> Iterator[int]:
    """Use a different workspace budget inside a ``with`` block (thread- and task-local)."""
    with _scoped(_workspace, _check(n)):
        yield n


#: The ways :func:`xpnet.functional.conv2d` can compute, for :func:`conv_strategy`:
#: ``"flat"`` (stride 1: windows are shifts of the flattened image), ``"strided"`` (windows
#: by 2-D strided slices), ``"gather"`` (windows by one gather with a cached index; the
#: fewest operations, chosen on GPUs), ``"depthwise"`` (one input channel per group).
CONV_STRATEGIES = ("flat", "strided", "gather", "depthwise")

_conv_strategy: ContextVar[str | None] = ContextVar("xpnet_conv_strategy", default=None)


def get_conv_strategy() -> str | None:
    """The convolution strategy forced by :func:`conv_strategy`, or ``None`` (choose)."""
    return _conv_strategy.get()


@contextlib.contextmanager
def conv_strategy(name: str | None) -> Iterator[str | None]:
    """Compute every convolution in the block with one strategy (``None``: choose).

    A convolution the strategy cannot compute (``"flat"`` with a stride, ``"depthwise"``
    on a grouped convolution with several input channels per group) raises ``ValueError``.
    """
    if name is not None and name not in CONV_STRATEGIES:
        raise ValueError(f"conv strategy: expected one of {CONV_STRATEGIES} or None, got {name!r}")
    with _scoped(_conv_strategy, name):
        yield name


_native_kernels: ContextVar[bool] = ContextVar("xpnet_native_kernels", default=True)


def get_native_kernels() -> bool:
    """Whether ops may call a backend's own kernels now (see :func:`native_kernels`)."""
    return _native_kernels.get()


@contextlib.contextmanager
def native_kernels(enabled: bool) -> Iterator[bool]:
    """Let ops call a backend's own kernels inside the block (``True``, the default), or
    keep every op on the standard path written against the Array API (``False``).

    Today the convolutions (``conv1d``/``2d``/``3d`` and their transposes) call the
    backend's own convolution on torch and JAX (depthwise ones on JAX: sums over the
    kernel offsets, which XLA fuses), and on NumPy with Numba installed build and fold
    their columns with compiled loops (depthwise ones, batch normalisation in training and
    max pooling over tiling windows run compiled passes there too); on torch, max and
    average pooling, relu's pullback and cross-entropy call torch's own kernels too. The
    two paths agree to round-off (but for a max-pooling window holding NaN, see the
    operator table); the standard one is what the tests check the native one against.
    """
    if not isinstance(enabled, bool):
        raise TypeError(f"native_kernels: expected True or False, got {enabled!r}")
    with _scoped(_native_kernels, enabled):
        yield enabled


_value_checks: ContextVar[bool | None] = ContextVar("xpnet_value_checks", default=None)


def get_value_checks() -> bool | None:
    """``True`` or ``False`` if :func:`value_checks` decided, else ``None`` (automatic)."""
    return _value_checks.get()


@contextlib.contextmanager
def value_checks(enabled: bool | None) -> Iterator[bool | None]:
    """Run (``True``), skip (``False``) or decide automatically (``None``, the default) the
    argument checks that read array values on the host inside the block.

    Automatically, they run where reading a value is free (arrays in host memory) and are
    skipped on GPUs, where the read would stall the device queue, and on traced or lazy
    arrays (``jax.jit``, Dask), where there is no value to read. A skipped check never
    passes bad input silently: the op makes its result NaN instead (e.g. a class target out
    of range makes ``cross_entropy`` NaN).
    """
    if enabled is not None and not isinstance(enabled, bool):
        raise ValueError(f"value checks: expected True, False or None, got {enabled!r}")
    with _scoped(_value_checks, enabled):
        yield enabled
