"""An op-counting backend: how many kernel launches and host syncs a computation costs.

On a GPU every array operation is a kernel launch of a few microseconds, and every read of a
value on the host (``bool``, ``float``, ``int``, ``to_numpy``) waits for the device to drain
its queue. Neither shows in a CPU profile, so xpnet counts them instead: the ``counting``
backend wraps NumPy's namespace, runs every operation for real, and records

* **calls**: every call that produces an array, views included;
* **launches**: the kernel launches a GPU library would make for those calls: none for a
  view (a slice, a reshape or a transpose that NumPy made without copying), one per
  computing op, and CuPy's rules for ``concat`` / ``stack`` (one copy kernel per array, or
  one kernel for more than eight small arrays) and ``matmul`` (copies of strided operands,
  pointer-table kernels where a batch axis broadcasts);
* **transfers**: host-to-device copies (an array made from host data, e.g. a 0-d constant);
* **syncs**: reads on the host, and ops whose output shape depends on the data (``nonzero``,
  ``unique_*``, boolean-mask indexing), which a GPU library must read back.

The backend describes itself as launch-bound (a GPU's profile), so xpnet's ops take the
paths they take on CuPy, and the counts say what a GPU step costs::

    import xpnet
    from xpnet.testing import count_ops, register_counting_backend

    register_counting_backend()
    with xpnet.use_backend("counting"), count_ops() as counts:
        ...                      # build arrays and run ops as on any backend
    print(counts.launches, counts.syncs)

Counts are deterministic, so the test suite holds budgets on them (``tests/test_budgets.py``)
and ``xpnet bench --count`` prints them layer by layer.
"""

from __future__ import annotations

import contextlib
import operator
from collections.abc import Callable, Iterator
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from . import backends
from .backends import GPU_PROFILE, BackendSpec, DeviceProfile

__all__ = [
    "CUPY_CONCAT_SINGLE_KERNEL_MIN",
    "CountingArray",
    "CountingDevice",
    "CountingNamespace",
    "OpCounts",
    "count_ops",
    "counting_backend",
    "register_counting_backend",
]

#: CuPy concatenates more than this many arrays of one dtype (each under 2 MiB on average)
#: in one kernel, after copying a table of their pointers to the device; fewer arrays, or
#: larger ones, get one copy kernel each (``cupy/_core/_routines_manipulation.pyx``).
CUPY_CONCAT_SINGLE_KERNEL_MIN = 9
_CUPY_CONCAT_BYTES_PER_ARRAY = 2 * 2**20


@dataclass
class OpCounts:
    """What a computation cost, in array calls, estimated launches, transfers and syncs.

    Attributes
    ----------
    calls : int
        Calls that produced an array (views included).
    launches : int
        Estimated GPU kernel launches.
    transfers : int
        Host-to-device copies.
    syncs : int
        Host reads of device values, and data-dependent output shapes.
    sync_sites : list of str
        What each sync was (``"bool"``, ``"float"``, ``"nonzero"``, ...), in order.
    by_operation : dict
        Launches per operation name (``"matmul"``, ``"__add__"``, ...).
    sections : dict of str to OpCounts
        The same counts for each :meth:`section` entered while counting.
    """

    calls: int = 0
    launches: int = 0
    transfers: int = 0
    syncs: int = 0
    sync_sites: list[str] = field(default_factory=list)
    by_operation: dict[str, int] = field(default_factory=dict)
    sections: dict[str, OpCounts] = field(default_factory=dict)
    _open: list[OpCounts] = field(default_factory=list, repr=False)

    def _targets(self) -> list[OpCounts]:
        return [self, *self._open]

    def _record(self, name: str, launches: int, transfers: int = 0) -> None:
        for target in self._targets():
            target.calls += 1
            target.launches += launches
            target.transfers += transfers
            if launches:
                target.by_operation[name] = target.by_operation.get(name, 0) + launches

    def _sync(self, site: str) -> None:
        for target in self._targets():
            target.syncs += 1
            target.sync_sites.append(site)

    @contextlib.contextmanager
    def section(self, label: str) -> Iterator[OpCounts]:
        """Also count what runs inside the block under ``label`` (sections may nest; a
        label entered twice accumulates)."""
        part = self.sections.setdefault(label, OpCounts())
        self._open.append(part)
        try:
            yield part
        finally:
            self._open.remove(part)


_active: ContextVar[OpCounts | None] = ContextVar("xpnet_op_counts", default=None)


@contextlib.contextmanager
def count_ops() -> Iterator[OpCounts]:
    """Count the operations on counting-backend arrays inside the block.

    Yields
    ------
    OpCounts
        Filled in as the block runs; read it during or after the block.
    """
    counts = OpCounts()
    token = _active.set(counts)
    try:
        yield counts
    finally:
        _active.reset(token)


def _record(name: str, launches: int, transfers: int = 0) -> None:
    counts = _active.get()
    if counts is not None:
        counts._record(name, launches, transfers)


def _sync(site: str) -> None:
    counts = _active.get()
    if counts is not None:
        counts._sync(site)


# --- arrays ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class CountingDevice:
    """The device of one counting backend (host memory underneath); its profile says how
    the ops should treat it."""

    name: str
    profile: DeviceProfile

    def __str__(self) -> str:
        return self.name


def _unwrap(value: Any) -> Any:
    if isinstance(value, CountingArray):
        return value._data
    if isinstance(value, CountingDevice):
        return "cpu"
    if isinstance(value, list | tuple):
        return type(value)(_unwrap(v) for v in value)
    return value


def _inputs(args: tuple[Any, ...], kwargs: dict[str, Any]) -> list[np.ndarray]:
    found: list[np.ndarray] = []
    for value in (*args, *kwargs.values()):
        if isinstance(value, CountingArray):
            found.append(value._data)
        elif isinstance(value, list | tuple):
            found.extend(v._data for v in value if isinstance(v, CountingArray))
    return found


def _is_view(result: np.ndarray, inputs: list[np.ndarray]) -> bool:
    """Whether NumPy made ``result`` without copying (a GPU library would launch nothing)."""
    return result.base is not None and any(np.may_share_memory(result, source) for source in inputs)


def _concat_launches(arrays: Any) -> tuple[int, int]:
    """Launches and transfers of CuPy's ``concatenate`` / ``stack`` of these arrays."""
    datas = [a._data if isinstance(a, CountingArray) else np.asarray(a) for a in arrays]
    count = len(datas)
    same_dtype = len({d.dtype for d in datas}) <= 1
    total = sum(d.nbytes for d in datas)
    if (
        count >= CUPY_CONCAT_SINGLE_KERNEL_MIN
        and same_dtype
        and total < _CUPY_CONCAT_BYTES_PER_ARRAY * count
    ):
        return 1, 1  # one kernel, after copying the pointer table to the device
    return count, 0


def _matmul_launches(a: np.ndarray, b: np.ndarray) -> int:
    """Launches of CuPy's ``matmul`` (``cupy/_core/_routines_linalg.pyx``): up to 2-D, one
    GEMM (transposed operands are passed to cuBLAS as such; other strided ones copied);
    above, a copy of each operand that is not C-contiguous, then one strided-batched GEMM,
    or, when a batch axis broadcasts, three kernels per batch axis building pointer tables
    and one batched GEMM."""
    if max(a.ndim, b.ndim) <= 2:
        return 1 + sum(
            not (m.flags.c_contiguous or m.flags.f_contiguous) for m in (a, b) if m.ndim == 2
        )
    copies = sum(not m.flags.c_contiguous for m in (a, b))
    batch_a, batch_b = a.shape[:-2], b.shape[:-2]
    width = max(len(batch_a), len(batch_b))
    batch_a = (1,) * (width - len(batch_a)) + batch_a
    batch_b = (1,) * (width - len(batch_b)) + batch_b
    broadcast = any(x != y for x, y in zip(batch_a, batch_b, strict=True))
    return copies + (1 + 3 * width if broadcast else 1)


def _binary(name: str) -> Callable[..., Any]:
    base = name.strip("_")
    reflected = base.startswith("r") and base not in ("rshift",)
    base = base[1:] if reflected else base
    op = getattr(operator, {"and": "and_", "or": "or_"}.get(base, base))

    def method(self: CountingArray, other: Any) -> Any:
        other_data: Any
        if isinstance(other, CountingArray):
            other_data = other._data
        elif isinstance(other, bool | int | float | complex):
            other_data = other
        else:
            return NotImplemented
        result = op(other_data, self._data) if reflected else op(self._data, other_data)
        launches = None
        if base == "matmul" and isinstance(other_data, np.ndarray):
            left, right = (other_data, self._data) if reflected else (self._data, other_data)
            launches = _matmul_launches(left, right)
        return self._ns._produced(name, result, [self._data], launches=launches)

    method.__name__ = name
    return method


def _unary(name: str, op: Callable[[Any], Any]) -> Callable[..., Any]:
    def method(self: CountingArray) -> Any:
        return self._ns._produced(name, op(self._data), [self._data])

    method.__name__ = name
    return method


def _host_read(name: str, convert: Callable[[Any], Any]) -> Callable[..., Any]:
    def method(self: CountingArray) -> Any:
        _sync(name)
        return convert(self._data)

    method.__name__ = name
    return method


class CountingArray:
    """A NumPy array seen through a counting namespace; every operation is recorded.

    Behaves as an Array API array object: arithmetic, comparisons, indexing, ``shape``,
    ``dtype``, ``device``, ``mT``, ``to_device``. Reading a value on the host (``bool``,
    ``float``, ``int``, ``item``, ``__array__``, DLPack) counts as a sync.
    """

    __slots__ = ("_data", "_ns")
    __array_priority__ = 1000  # NumPy defers mixed operations to this class

    def __init__(self, data: np.ndarray, namespace: CountingNamespace) -> None:
        self._data = data
        self._ns = namespace

    def __array_namespace__(self, api_version: str | None = None) -> CountingNamespace:
        return self._ns

    # -- metadata (free) --------------------------------------------------------------------

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self._data.shape)

    @property
    def ndim(self) -> int:
        return int(self._data.ndim)

    @property
    def size(self) -> int:
        return int(self._data.size)

    @property
    def dtype(self) -> Any:
        return self._data.dtype

    @property
    def device(self) -> CountingDevice:
        return self._ns.device

    @property
    def mT(self) -> Any:
        return self._ns._produced("mT", np.swapaxes(self._data, -1, -2), [self._data])

    @property
    def T(self) -> Any:
        return self._ns._produced("T", self._data.T, [self._data])

    def to_device(self, device: Any, /, *, stream: Any = None) -> CountingArray:
        return self

    def __repr__(self) -> str:
        return f"CountingArray({self._data!r}, device={self._ns.device})"

    # -- host reads (syncs) -----------------------------------------------------------------

    __bool__ = _host_read("bool", bool)
    __float__ = _host_read("float", float)
    __int__ = _host_read("int", int)
    __index__ = _host_read("index", operator.index)
    __complex__ = _host_read("complex", complex)

    def item(self) -> Any:
        _sync("item")
        return self._data.item()

    def tolist(self) -> Any:
        _sync("tolist")
        return self._data.tolist()

    def __array__(self, dtype: Any = None, copy: bool | None = None) -> np.ndarray:
        _sync("__array__")
        return np.asarray(self._data, dtype=dtype)

    def __dlpack__(self, *args: Any, **kwargs: Any) -> Any:
        _sync("dlpack")
        return self._data.__dlpack__(*args, **kwargs)

    def __dlpack_device__(self) -> Any:
        return self._data.__dlpack_device__()

    # -- indexing ---------------------------------------------------------------------------

    def __getitem__(self, key: Any) -> Any:
        raw = _unwrap(key)
        parts = raw if isinstance(raw, tuple) else (raw,)
        if any(isinstance(p, np.ndarray) and p.dtype == np.bool_ for p in parts):
            _sync("boolean index")  # the output's length depends on the mask's values
        return self._ns._produced("__getitem__", self._data[raw], [self._data])

    def __setitem__(self, key: Any, value: Any) -> None:
        self._data[_unwrap(key)] = _unwrap(value)
        _record("__setitem__", 1)

    # -- operators --------------------------------------------------------------------------

    __add__ = _binary("__add__")
    __radd__ = _binary("__radd__")
    __sub__ = _binary("__sub__")
    __rsub__ = _binary("__rsub__")
    __mul__ = _binary("__mul__")
    __rmul__ = _binary("__rmul__")
    __truediv__ = _binary("__truediv__")
    __rtruediv__ = _binary("__rtruediv__")
    __floordiv__ = _binary("__floordiv__")
    __rfloordiv__ = _binary("__rfloordiv__")
    __mod__ = _binary("__mod__")
    __rmod__ = _binary("__rmod__")
    __pow__ = _binary("__pow__")
    __rpow__ = _binary("__rpow__")
    __matmul__ = _binary("__matmul__")
    __rmatmul__ = _binary("__rmatmul__")
    __and__ = _binary("__and__")
    __rand__ = _binary("__rand__")
    __or__ = _binary("__or__")
    __ror__ = _binary("__ror__")
    __xor__ = _binary("__xor__")
    __rxor__ = _binary("__rxor__")
    __lshift__ = _binary("__lshift__")
    __rlshift__ = _binary("__rlshift__")
    __rshift__ = _binary("__rshift__")
    __rrshift__ = _binary("__rrshift__")
    __lt__ = _binary("__lt__")
    __le__ = _binary("__le__")
    __gt__ = _binary("__gt__")
    __ge__ = _binary("__ge__")
    __eq__ = _binary("__eq__")
    __ne__ = _binary("__ne__")
    __neg__ = _unary("__neg__", operator.neg)
    __pos__ = _unary("__pos__", operator.pos)
    __abs__ = _unary("__abs__", operator.abs)
    __invert__ = _unary("__invert__", operator.invert)
    __hash__ = None  # type: ignore[assignment]


# --- the namespace ---------------------------------------------------------------------------

# Calls that make arrays from nothing, and what they cost.
_CREATION = {"zeros", "ones", "full", "arange", "eye", "linspace", "zeros_like", "ones_like",
             "full_like", "tril", "triu"}  # fmt: skip
_FREE_CREATION = {"empty", "empty_like"}
# Calls that return something other than arrays, or only metadata: not counted.
_NOT_OPS = {"isdtype", "finfo", "iinfo", "result_type", "can_cast", "__array_api_version__",
            "__array_namespace_info__"}  # fmt: skip
# Calls whose output shape depends on the data.
_DATA_DEPENDENT = {"nonzero", "unique_all", "unique_counts", "unique_inverse", "unique_values"}


class CountingNamespace:
    """NumPy's Array API namespace (through array-api-compat) on one counting device, with
    every call recorded."""

    def __init__(self, device: CountingDevice) -> None:
        import array_api_compat.numpy as inner

        self.__name__ = f"xpnet.testing[{device}]"
        self.device = device
        self._inner = inner
        self._cache: dict[str, Any] = {}

    def __getattr__(self, name: str) -> Any:
        cache = self.__dict__.get("_cache")
        if cache is None or (name.startswith("__") and name not in _NOT_OPS):
            raise AttributeError(name)
        if name not in cache:
            value = getattr(self._inner, name)
            if callable(value) and not isinstance(value, type) and name not in _NOT_OPS:
                value = self._wrapped(name, value)
            cache[name] = value
        return cache[name]

    def _wrap(self, value: Any) -> Any:
        if isinstance(value, np.ndarray):
            return CountingArray(value, self)
        if isinstance(value, np.generic):
            return CountingArray(np.asarray(value), self)
        if isinstance(value, tuple | list):
            return type(value)(self._wrap(v) for v in value)
        return value

    def _produced(
        self, name: str, result: Any, inputs: list[np.ndarray], launches: int | None = None
    ) -> Any:
        """Record one array-producing call and wrap its result."""
        if launches is None:
            first = result[0] if isinstance(result, tuple | list) and result else result
            view = isinstance(first, np.ndarray) and _is_view(first, inputs)
            launches = 0 if view else 1
        _record(name, launches)
        return self._wrap(result)

    def _wrapped(self, name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        def call(*args: Any, **kwargs: Any) -> Any:
            if name == "asarray":
                return self._asarray(fn, *args, **kwargs)
            if name in _DATA_DEPENDENT:
                _sync(name)
            inputs = _inputs(args, kwargs)
            result = fn(*_unwrap(args), **{k: _unwrap(v) for k, v in kwargs.items()})
            if name in ("concat", "stack"):
                launches, transfers = _concat_launches(args[0] if args else kwargs["arrays"])
                _record(name, launches, transfers)
                return self._wrap(result)
            if name in _FREE_CREATION or name == "from_dlpack":
                return self._produced(name, result, inputs, launches=0)
            if name in _CREATION:
                return self._produced(name, result, inputs, launches=1)
            if name == "matmul":
                return self._produced(name, result, inputs, launches=_matmul_launches(*inputs))
            return self._produced(name, result, inputs)

        call.__name__ = name
        return call

    def _asarray(self, fn: Callable[..., Any], obj: Any, /, **kwargs: Any) -> CountingArray:
        kwargs = {k: _unwrap(v) for k, v in kwargs.items()}
        if isinstance(obj, CountingArray):
            result = np.asarray(fn(obj._data, **kwargs))
            _record("asarray", 0 if np.may_share_memory(result, obj._data) else 1)
            return CountingArray(result, self)
        _record("asarray", 0, transfers=1)  # host data copied to the device
        return CountingArray(np.array(fn(obj, **kwargs), copy=True), self)


# --- the backend -----------------------------------------------------------------------------


def _to_host(x: Any) -> np.ndarray:
    _sync("to_numpy")
    return np.asarray(x._data)


def counting_backend(name: str = "counting", profile: DeviceProfile = GPU_PROFILE) -> BackendSpec:
    """The registry entry of an op-counting backend.

    Parameters
    ----------
    name : str, default "counting"
        Its registry name, also the name of its one device.
    profile : DeviceProfile, default :data:`xpnet.backends.GPU_PROFILE`
        What it tells the ops about its device. The default makes ops take their GPU
        paths; pass :data:`xpnet.backends.CPU_PROFILE` to count the CPU paths instead.
    """
    namespace = CountingNamespace(CountingDevice(name, profile))

    def from_host(xp: Any, obj: Any, dtype: Any, device: Any) -> CountingArray:
        if not isinstance(obj, CountingArray):  # already on the device: no host copy
            obj = np.asarray(obj)
        return namespace._asarray(namespace._inner.asarray, obj, dtype=dtype)

    return BackendSpec(
        name=name,
        module="numpy",
        load_namespace=lambda: namespace,
        list_devices=lambda xp: [namespace.device],
        from_host=from_host,
        to_host=_to_host,
        device_profile=lambda device: profile,
        description=f"NumPy with every op counted, as on a {profile.kind} (testing)",
    )


def register_counting_backend(
    name: str = "counting", profile: DeviceProfile = GPU_PROFILE
) -> BackendSpec:
    """Register (or replace) :func:`counting_backend` under ``name`` and return it."""
    spec = counting_backend(name, profile)
    backends.register_backend(spec, overwrite=True)
    return spec
