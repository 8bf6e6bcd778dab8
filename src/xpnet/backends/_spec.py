"""What a backend is: the description of one array library that xpnet can run on."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "CPU_PROFILE",
    "GPU_PROFILE",
    "BackendInfo",
    "BackendSpec",
    "BackendUnavailableError",
    "DeviceProfile",
    "UnknownBackendError",
]


class UnknownBackendError(ValueError):
    """Raised when a backend name is not in the registry."""


class BackendUnavailableError(RuntimeError):
    """Raised when a known backend cannot be used here (not installed, or no device)."""


@dataclass(frozen=True)
class DeviceProfile:
    """What the ops need to know about a device to choose how to compute.

    Attributes
    ----------
    kind : str
        ``"cpu"`` or ``"gpu"`` (shown in tables and messages).
    launch_bound : bool
        Each array operation is a kernel launch of a fixed cost (microseconds), so fewer,
        larger operations win even when they move more bytes (GPUs). On a CPU an operation
        costs what its memory traffic costs, and the ops choose the layouts that move least.
    cheap_sync : bool
        Reading a value on the host costs nothing (no queue of device work to wait for),
        so value checks that need one (e.g. target ranges) run; elsewhere they are left out.
    chunk_bytes : int or None
        Largest temporary buffer per chunk of a batch; ``None``: only the workspace budget
        (:mod:`xpnet.config`) limits it.
    """

    kind: str
    launch_bound: bool
    cheap_sync: bool
    # Measured on a 2-core x86 CPU: buffers above glibc's largest mmap threshold (32 MiB)
    # are mapped afresh, page faults and all, on every call; 16 MiB chunks are recycled by
    # the allocator (3x3 32->32 on 64x32x28x28: forward and backward 1.3x faster).
    chunk_bytes: int | None = 16 * 2**20


#: Host memory, NumPy-like libraries: sync-free reads, memory-bound ops, 16 MiB chunks.
CPU_PROFILE = DeviceProfile(kind="cpu", launch_bound=False, cheap_sync=True)
#: A GPU: launch-bound ops, syncs that stall the device queue, chunks as large as allowed.
GPU_PROFILE = DeviceProfile(kind="gpu", launch_bound=True, cheap_sync=False, chunk_bytes=None)


@dataclass(frozen=True)
class BackendSpec:
    """Description of one backend: how to import it and where its arrays live.

    Every callable is invoked lazily, so describing a backend imports nothing.

    Parameters
    ----------
    name : str
        Registry name, e.g. ``"cupy"``.
    module : str
        Import name of the array library, e.g. ``"cupy"``. Used to check that the
        library is installed without importing it.
    load_namespace : callable
        ``() -> namespace``: imports the library and returns its Array API namespace.
    list_devices : callable
        ``(namespace) -> list``: the devices arrays can be placed on, in preference order.
        An empty list means the backend has no usable device here.
    resolve_device : callable, optional
        ``(namespace, device) -> device``: turns a user's device argument (``None``,
        ``"cpu"``, ``"cuda:1"``, an int, or a library device object) into a library device
        object. ``None`` must give the default device. Raises ``ValueError`` for a device
        this backend does not have. The default accepts ``None`` and the devices listed.
    from_host : callable, optional
        ``(namespace, obj, dtype, device) -> array``: creates an array from host data.
        Defaults to ``namespace.asarray(obj, dtype=dtype, device=device)``.
    to_host : callable, optional
        ``(array) -> numpy.ndarray``: copies an array to host memory. Defaults to DLPack,
        then ``numpy.asarray``.
    needs_gpu : bool
        Whether the backend only runs on a GPU (availability then requires one).
    extra : str, optional
        The ``pip install xpnet[extra]`` that installs the library.
    description : str
        One line shown by :func:`xpnet.list_backends`.
    device_profile : callable, optional
        ``(device) -> DeviceProfile``: how ops should compute on that device. Defaults to
        :data:`CPU_PROFILE`.
    select_device : callable, optional
        ``(device) -> restore``: makes ``device`` the library's current device, for
        libraries that launch work on their current device whatever their arrays' (CuPy),
        and returns a function restoring the previous one. :func:`xpnet.set_backend` keeps
        the selection; :func:`xpnet.use_backend` restores it on leaving its block.
    """

    name: str
    module: str
    load_namespace: Callable[[], Any]
    list_devices: Callable[[Any], list[Any]]
    resolve_device: Callable[[Any, Any], Any] | None = None
    from_host: Callable[[Any, Any, Any, Any], Any] | None = None
    to_host: Callable[[Any], Any] | None = None
    needs_gpu: bool = False
    extra: str | None = None
    description: str = ""
    device_profile: Callable[[Any], DeviceProfile] | None = None
    select_device: Callable[[Any], Callable[[], None]] | None = None

    def install_hint(self) -> str:
        """Return the pip command that installs this backend's library."""
        if self.extra is not None:
            return f"pip install 'xpnet[{self.extra}]'"
        return f"pip install {self.module}"


@dataclass(frozen=True)
class BackendInfo:
    """What :func:`xpnet.list_backends` reports about one backend.

    Attributes
    ----------
    name : str
        Registry name.
    available : bool
        Whether the backend can be used here.
    reason : str or None
        Why it is unavailable (with the install hint), else ``None``.
    devices : list of str
        The devices it can use here (empty when unavailable).
    needs_gpu : bool
        Whether it only runs on a GPU.
    module : str
        The library's import name.
    extra : str or None
        The xpnet extra that installs the library.
    description : str
        One-line description.
    """

    name: str
    available: bool
    reason: str | None
    devices: list[str] = field(default_factory=list)
    needs_gpu: bool = False
    module: str = ""
    extra: str | None = None
    description: str = ""
