"""Backend registry: which array libraries xpnet runs on, and which one is active.

>>> import xpnet
>>> xpnet.get_backend().name
'numpy'
"""

from ._registry import (
    ENTRY_POINT_GROUP,
    ActiveBackend,
    asarray,
    assume_device_profile,
    available_backends,
    backend_of,
    device_profile,
    get_backend,
    get_namespace,
    list_backends,
    register_backend,
    set_backend,
    to_numpy,
    unregister_backend,
    use_backend,
)
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
    "CPU_PROFILE",
    "ENTRY_POINT_GROUP",
    "GPU_PROFILE",
    "ActiveBackend",
    "BackendInfo",
    "BackendSpec",
    "BackendUnavailableError",
    "DeviceProfile",
    "UnknownBackendError",
    "asarray",
    "assume_device_profile",
    "available_backends",
    "backend_of",
    "device_profile",
    "get_backend",
    "get_namespace",
    "list_backends",
    "register_backend",
    "set_backend",
    "to_numpy",
    "unregister_backend",
    "use_backend",
]
