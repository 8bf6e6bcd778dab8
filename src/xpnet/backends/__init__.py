"""Backend registry: which array libraries xpnet runs on, and which one is active.

>>> import xpnet
>>> xpnet.get_backend().name
'numpy'
"""

from ._registry import (
    ENTRY_POINT_GROUP,
    ActiveBackend,
    asarray,
    available_backends,
    get_backend,
    get_namespace,
    list_backends,
    register_backend,
    set_backend,
    to_numpy,
    unregister_backend,
    use_backend,
)
from ._spec import BackendInfo, BackendSpec, BackendUnavailableError, UnknownBackendError

__all__ = [
    "ENTRY_POINT_GROUP",
    "ActiveBackend",
    "BackendInfo",
    "BackendSpec",
    "BackendUnavailableError",
    "UnknownBackendError",
    "asarray",
    "available_backends",
    "get_backend",
    "get_namespace",
    "list_backends",
    "register_backend",
    "set_backend",
    "to_numpy",
    "unregister_backend",
    "use_backend",
]
