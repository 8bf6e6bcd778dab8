"""What a backend is: the description of one array library that xpnet can run on."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

__all__ = ["BackendInfo", "BackendSpec", "BackendUnavailableError", "UnknownBackendError"]


class UnknownBackendError(ValueError):
    """Raised when a backend name is not in the registry."""


class BackendUnavailableError(RuntimeError):
    """Raised when a known backend cannot be used here (not installed, or no device)."""


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
