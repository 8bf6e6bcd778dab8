"""The backend registry and the active backend.

The active backend is a process-wide default (:func:`set_backend`, or the ``XPNET_BACKEND``
environment variable) that :func:`use_backend` overrides per thread and per task through a
:class:`contextvars.ContextVar`, so nested and concurrent overrides never leak.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import importlib.util
import os
import threading
from collections.abc import Callable, Iterator
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

import array_api_compat
import numpy as np

from ._builtin import BUILTIN_BACKENDS
from ._spec import (
    CPU_PROFILE,
    GPU_PROFILE,
    BackendInfo,
    BackendSpec,
    BackendUnavailableError,
    DeviceProfile,
    UnknownBackendError,
)

__all__ = [
    "ENTRY_POINT_GROUP",
    "ActiveBackend",
    "asarray",
    "assume_device_profile",
    "available_backends",
    "device_profile",
    "get_backend",
    "get_namespace",
    "list_backends",
    "register_backend",
    "set_backend",
    "to_numpy",
    "use_backend",
]

ENTRY_POINT_GROUP = "xpnet.backends"
_DEFAULT_FLOAT = "float32"

_lock = threading.RLock()
_registry: dict[str, BackendSpec] = {spec.name: spec for spec in BUILTIN_BACKENDS}
_entry_points_loaded = False
# name -> (namespace, None) once loaded, or (None, reason) once known to be unusable.
_load_cache: dict[str, tuple[Any, str | None]] = {}


@dataclass(frozen=True)
class ActiveBackend:
    """The backend arrays are created on: its registry entry, namespace and device.

    Attributes
    ----------
    name : str
        Registry name.
    xp : module
        The Array API namespace.
    device : object
        The library's device object where new arrays are placed.
    spec : BackendSpec
        The registry entry.
    """

    name: str
    xp: Any
    device: Any
    spec: BackendSpec

    def __repr__(self) -> str:
        return f"ActiveBackend(name={self.name!r}, device={self.device!r})"


_default: ActiveBackend | None = None
_override: ContextVar[ActiveBackend | None] = ContextVar("xpnet_backend", default=None)


def _load_entry_points() -> None:
    """Register third-party backends advertised in the ``xpnet.backends`` group, once."""
    global _entry_points_loaded
    with _lock:
        if _entry_points_loaded:
            return
        _entry_points_loaded = True
        for entry in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
            obj = entry.load()
            spec = obj() if callable(obj) and not isinstance(obj, BackendSpec) else obj
            if not isinstance(spec, BackendSpec):
                raise TypeError(
                    f"entry point {entry.name!r} in group {ENTRY_POINT_GROUP!r} must give a "
                    f"BackendSpec (or a callable returning one), got {type(spec).__name__}"
                )
            if spec.name not in _registry:
                _registry[spec.name] = spec


def _spec(name: str) -> BackendSpec:
    if not isinstance(name, str):
        raise TypeError(f"backend name must be a str, got {type(name).__name__}")
    _load_entry_points()
    try:
        return _registry[name]
    except KeyError:
        known = ", ".join(sorted(_registry))
        raise UnknownBackendError(f"unknown backend {name!r}; known backends: {known}") from None


def _load(spec: BackendSpec) -> tuple[Any, str | None]:
    """Import a backend's library and check it has a device; cache the outcome."""
    with _lock:
        if spec.name in _load_cache:
            return _load_cache[spec.name]
        outcome: tuple[Any, str | None]
        if importlib.util.find_spec(spec.module.partition(".")[0]) is None:
            outcome = (None, f"{spec.module} is not installed ({spec.install_hint()})")
        else:
            try:
                xp = spec.load_namespace()
                devices = spec.list_devices(xp)
            except Exception as exc:  # a broken install: report it rather than crash
                outcome = (None, f"importing {spec.module} failed: {exc!r}")
            else:
                if not devices:
                    what = "GPU" if spec.needs_gpu else "device"
                    outcome = (None, f"{spec.module} is installed but found no usable {what}")
                else:
                    outcome = (xp, None)
        _load_cache[spec.name] = outcome
        return outcome


def register_backend(spec: BackendSpec, *, overwrite: bool = False) -> None:
    """Add a backend to the registry.

    Parameters
    ----------
    spec : BackendSpec
        Its description; nothing is imported until the backend is used.
    overwrite : bool, default False
        Replace an existing entry of the same name instead of raising.

    Raises
    ------
    ValueError
        If a backend of that name exists and ``overwrite`` is false.

    Notes
    -----
    Packages can also advertise a backend through the ``xpnet.backends`` entry-point
    group; the entry point loads to a :class:`BackendSpec` or a callable returning one.
    """
    if not isinstance(spec, BackendSpec):
        raise TypeError(f"spec must be a BackendSpec, got {type(spec).__name__}")
    _load_entry_points()
    with _lock:
        if spec.name in _registry and not overwrite:
            raise ValueError(
                f"a backend named {spec.name!r} is already registered; pass overwrite=True"
            )
        _registry[spec.name] = spec
        _load_cache.pop(spec.name, None)
        _profiles.clear()


def unregister_backend(name: str) -> None:
    """Remove a backend added with :func:`register_backend`."""
    with _lock:
        _spec(name)
        del _registry[name]
        _load_cache.pop(name, None)
        _profiles.clear()


def list_backends() -> list[BackendInfo]:
    """Describe every registered backend, available or not.

    Imports each installed backend library to check it works and find its devices.

    Returns
    -------
    list of BackendInfo
        In registration order; ``reason`` says why an unavailable backend cannot be used.
    """
    _load_entry_points()
    with _lock:
        specs = list(_registry.values())
    infos = []
    for spec in specs:
        xp, reason = _load(spec)
        devices = [str(d) for d in spec.list_devices(xp)] if reason is None else []
        infos.append(
            BackendInfo(
                name=spec.name,
                available=reason is None,
                reason=reason,
                devices=devices,
                needs_gpu=spec.needs_gpu,
                module=spec.module,
                extra=spec.extra,
                description=spec.description,
            )
        )
    return infos


def available_backends() -> list[str]:
    """Return the names of the backends usable here, in registration order."""
    return [info.name for info in list_backends() if info.available]


def _activate(name: str, device: Any) -> ActiveBackend:
    spec = _spec(name)
    xp, reason = _load(spec)
    if reason is not None:
        raise BackendUnavailableError(f"backend {name!r} is unavailable: {reason}")
    resolve = spec.resolve_device
    if resolve is None:
        devices = spec.list_devices(xp)
        if device is None:
            resolved = devices[0]
        elif device in devices:
            resolved = device
        else:
            raise ValueError(
                f"device: backend {name!r} has devices {[str(d) for d in devices]}, got {device!r}"
            )
    else:
        try:
            resolved = resolve(xp, device)
        except ValueError as exc:
            raise ValueError(f"device: {exc}") from None
    return ActiveBackend(name=name, xp=xp, device=resolved, spec=spec)


def set_backend(name: str, device: Any = None) -> ActiveBackend:
    """Make a backend the process-wide default.

    Parameters
    ----------
    name : str
        A registered backend, e.g. ``"numpy"`` or ``"cupy"``.
    device : str, int or library device, optional
        Where new arrays go, e.g. ``"cuda:1"``; the backend's default device if omitted.

    Returns
    -------
    ActiveBackend
        The backend now active (outside any :func:`use_backend` block).

    Raises
    ------
    UnknownBackendError
        If ``name`` is not registered (the message lists the known names).
    BackendUnavailableError
        If the backend's library is missing or has no device (the message says how to
        install it).
    """
    global _default
    active = _activate(name, device)
    _select(active)
    with _lock:
        _default = active
    return active


def _select(active: ActiveBackend) -> Callable[[], None]:
    """Make ``active``'s device its library's current one (where the library has one);
    returns what restores the previous."""
    if active.spec.select_device is None:
        return lambda: None
    return active.spec.select_device(active.device)


@contextlib.contextmanager
def use_backend(name: str, device: Any = None) -> Iterator[ActiveBackend]:
    """Use a backend inside a ``with`` block, then restore the previous one.

    Nestable and safe across threads and async tasks: the choice is held in a
    :class:`~contextvars.ContextVar`.

    Parameters
    ----------
    name : str
        A registered backend.
    device : str, int or library device, optional
        Where new arrays go inside the block.

    Yields
    ------
    ActiveBackend
        The backend active inside the block.
    """
    active = _activate(name, device)
    restore = _select(active)
    token = _override.set(active)
    try:
        yield active
    finally:
        _override.reset(token)
        restore()


def get_backend() -> ActiveBackend:
    """Return the active backend: the innermost :func:`use_backend`, else the default.

    The default is ``XPNET_BACKEND`` (a name, optionally ``name:device``) when set,
    else ``"numpy"``.
    """
    global _default
    active = _override.get()
    if active is not None:
        return active
    with _lock:
        if _default is None:
            choice = os.environ.get("XPNET_BACKEND", "").strip() or "numpy"
            name, _, device = choice.partition(":")
            _default = _activate(name, device or None)
            _select(_default)
        return _default


def get_namespace(*arrays: Any) -> Any:
    """Return the Array API namespace of ``arrays``, or the active backend's if none.

    Raises
    ------
    TypeError
        If the arrays come from different libraries.
    """
    if arrays:
        return array_api_compat.array_namespace(*arrays)
    return get_backend().xp


def _resolve_dtype(xp: Any, dtype: Any) -> Any:
    if dtype is None or not isinstance(dtype, str):
        return dtype
    try:
        return getattr(xp, dtype)
    except AttributeError:
        raise ValueError(f"dtype: {xp.__name__} has no dtype named {dtype!r}") from None


def asarray(obj: Any, dtype: Any = None) -> Any:
    """Create an array on the active backend and device.

    Parameters
    ----------
    obj : array_like
        Nested sequences, a scalar, a NumPy array, or an array of any backend
        (copied through host memory when it belongs to another library).
    dtype : str or dtype, optional
        ``"float32"``, ``"float64"``, ``"int64"``, ... or a dtype of the active namespace.
        Python floats and lists of them become ``float32`` unless told otherwise;
        arrays keep their dtype.

    Returns
    -------
    array
        An array of the active backend's namespace on its device.
    """
    active = get_backend()
    xp = active.xp
    dtype = _resolve_dtype(xp, dtype)
    if array_api_compat.is_array_api_obj(obj) and not isinstance(obj, np.ndarray | np.generic):
        if array_api_compat.array_namespace(obj) is not xp:
            obj = to_numpy(obj)
    elif not isinstance(obj, np.ndarray | np.generic) and dtype is None:
        host = np.asarray(obj)
        if host.dtype.kind == "f":
            dtype = getattr(xp, _DEFAULT_FLOAT)
        obj = host
    if isinstance(obj, np.ndarray) and not obj.flags.writeable and xp is not _numpy_namespace():
        # torch warns on (and may later write through) a read-only buffer it wraps.
        obj = obj.copy()
    if active.spec.from_host is not None:
        return active.spec.from_host(xp, obj, dtype, active.device)
    return xp.asarray(obj, dtype=dtype, device=active.device)


def _numpy_namespace() -> Any:
    import array_api_compat.numpy as xp

    return xp


def backend_of(x: Any) -> str | None:
    """The name of the loaded backend whose namespace ``x`` belongs to (the active one
    first, then in registration order), or None."""
    xp = array_api_compat.array_namespace(x)
    active = get_backend()
    if active.xp is xp:
        return active.name
    with _lock:
        for name, (loaded, _) in _load_cache.items():
            if loaded is xp and name in _registry:
                return name
    return None


def to_numpy(x: Any) -> np.ndarray:
    """Copy an array of any backend (or a scalar or sequence) to a NumPy array on the host."""
    if isinstance(x, np.ndarray):
        return x
    # An array recorded for differentiation (xpnet.functional's TrackedArray): its value.
    x = getattr(x, "__xpnet_value__", x)
    if isinstance(x, np.ndarray):
        return x
    if not array_api_compat.is_array_api_obj(x):
        return np.asarray(x)
    xp = array_api_compat.array_namespace(x)
    with _lock:
        hooks = [
            _registry[name].to_host
            for name, (loaded, _) in _load_cache.items()
            if loaded is xp and name in _registry
        ]
    for to_host in hooks:
        if to_host is not None:
            return np.asarray(to_host(x))
    if array_api_compat.is_torch_array(x):
        return np.asarray(x.detach().cpu().numpy())
    if array_api_compat.is_cupy_array(x):
        return np.asarray(x.get())
    try:
        return np.from_dlpack(x)
    except (TypeError, RuntimeError, BufferError, AttributeError):
        return np.asarray(x)


_profiles: dict[tuple[type, str], DeviceProfile] = {}
_assumed_profile: ContextVar[DeviceProfile | None] = ContextVar("xpnet_profile", default=None)


@contextlib.contextmanager
def assume_device_profile(profile: DeviceProfile | None) -> Iterator[DeviceProfile | None]:
    """Make ops compute as on a device of ``profile`` inside the block, whatever their arrays'
    device (``None``: each array's own profile).

    For tests and comparisons: e.g. the GPU paths (fewest launches, no value checks that
    read the device) run on NumPy arrays under ``assume_device_profile(GPU_PROFILE)``.
    """
    if profile is not None and not isinstance(profile, DeviceProfile):
        raise TypeError(f"profile: expected a DeviceProfile or None, got {type(profile).__name__}")
    token = _assumed_profile.set(profile)
    try:
        yield profile
    finally:
        _assumed_profile.reset(token)


def _builtin_profile(x: Any, device: Any) -> DeviceProfile:
    """The profile of an array no registered ``device_profile`` describes, by its type."""
    if array_api_compat.is_cupy_array(x):
        return GPU_PROFILE
    if array_api_compat.is_torch_array(x):
        return GPU_PROFILE if getattr(device, "type", "cpu") == "cuda" else CPU_PROFILE
    if array_api_compat.is_jax_array(x):
        if device is None:  # a tracer inside jax.jit: it runs on JAX's default backend
            import jax

            platform = jax.default_backend()
        else:
            platform = getattr(device, "platform", "cpu")
        return GPU_PROFILE if platform in ("gpu", "cuda", "rocm") else CPU_PROFILE
    return CPU_PROFILE


def device_profile(x: Any) -> DeviceProfile:
    """How ops should compute on the device that holds ``x`` (see :class:`DeviceProfile`).

    A backend's ``device_profile`` decides for its arrays; arrays of a library no
    registered backend describes get the CPU profile, or the GPU one for CuPy arrays and
    torch / JAX arrays on a GPU. :func:`assume_device_profile` overrides all of these.
    """
    assumed = _assumed_profile.get()
    if assumed is not None:
        return assumed
    try:
        device = array_api_compat.device(x)
    except Exception:  # a traced or lazy array without a concrete device
        device = None
    key = (type(x), str(device))
    known = _profiles.get(key)
    if known is not None:
        return known
    profile = None
    xp = array_api_compat.array_namespace(x)
    with _lock:
        specs = [
            _registry[name]
            for name, (loaded, _) in _load_cache.items()
            if loaded is xp and name in _registry
        ]
    for spec in specs:
        if spec.device_profile is not None:
            profile = spec.device_profile(device)
            break
    if profile is None:
        profile = _builtin_profile(x, device)
    _profiles[key] = profile
    return profile
