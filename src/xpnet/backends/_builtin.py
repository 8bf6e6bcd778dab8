"""The backends xpnet knows out of the box.

Each loader imports its library only when called, so ``import xpnet`` stays light.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

from ._spec import BackendSpec

__all__ = ["BUILTIN_BACKENDS"]


def _parse_index(device: str, prefix: str) -> int:
    """Return N from ``"prefix:N"`` (0 for a bare ``"prefix"``)."""
    if device == prefix:
        return 0
    head, _, tail = device.partition(":")
    if head != prefix or not tail.isdigit():
        raise ValueError(f"expected {prefix!r} or '{prefix}:N', got {device!r}")
    return int(tail)


# --- numpy -----------------------------------------------------------------


def _numpy_namespace() -> Any:
    import array_api_compat.numpy as xp

    return xp


def _numpy_resolve(xp: Any, device: Any) -> Any:
    if device is None or device == "cpu":
        return "cpu"
    raise ValueError(f"the numpy backend only has device 'cpu', got {device!r}")


# --- cupy ------------------------------------------------------------------


def _cupy_namespace() -> Any:
    import array_api_compat.cupy as xp

    return xp


def _cupy_devices(xp: Any) -> list[Any]:
    import cupy

    try:
        count = int(cupy.cuda.runtime.getDeviceCount())
    except Exception:  # no driver, no GPU: CUDA raises its own error types
        return []
    return [cupy.cuda.Device(i) for i in range(count)]


def _cupy_resolve(xp: Any, device: Any) -> Any:
    import cupy

    devices = _cupy_devices(xp)
    if not devices:
        raise ValueError("the cupy backend found no CUDA device")
    if device is None:
        return devices[0]
    if isinstance(device, cupy.cuda.Device):
        index = int(device.id)
    elif isinstance(device, int):
        index = device
    elif isinstance(device, str):
        index = _parse_index(device.replace("gpu", "cuda"), "cuda")
    else:
        raise ValueError(
            f"expected a CUDA device index, 'cuda:N' or cupy.cuda.Device, got {device!r}"
        )
    if not 0 <= index < len(devices):
        raise ValueError(f"cupy has CUDA devices 0..{len(devices) - 1}, got index {index}")
    return devices[index]


def _cupy_to_host(x: Any) -> Any:
    return x.get()


# --- torch -----------------------------------------------------------------


def _torch_namespace() -> Any:
    import array_api_compat.torch as xp

    return xp


def _cupy_select(device: Any) -> Callable[[], None]:
    import cupy

    previous = cupy.cuda.Device()  # the current one
    device.use()
    return previous.use  # type: ignore[no-any-return]


def _torch_select(device: Any) -> Callable[[], None]:
    import torch

    if getattr(device, "type", "cpu") != "cuda":
        return lambda: None
    previous = torch.cuda.current_device()
    torch.cuda.set_device(device)
    return lambda: torch.cuda.set_device(previous)


def _torch_devices(xp: Any) -> list[Any]:
    import torch

    devices = [torch.device("cpu")]
    if torch.cuda.is_available():
        devices += [torch.device("cuda", i) for i in range(torch.cuda.device_count())]
    return devices


def _torch_resolve(xp: Any, device: Any) -> Any:
    import torch

    if device is None:
        return torch.device("cpu")
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise ValueError(f"torch does not understand device {device!r}: {exc}") from None
    if resolved.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"device {device!r} asked for CUDA, but torch sees no CUDA device")
        index = 0 if resolved.index is None else resolved.index
        if index >= torch.cuda.device_count():
            raise ValueError(
                f"torch has CUDA devices 0..{torch.cuda.device_count() - 1}, got {device!r}"
            )
        return torch.device("cuda", index)
    if resolved.type != "cpu":
        raise ValueError(f"xpnet runs torch on 'cpu' or 'cuda' devices, got {device!r}")
    return resolved


def _torch_to_host(x: Any) -> Any:
    return x.detach().cpu().resolve_conj().numpy()


# --- jax -------------------------------------------------------------------


def _jax_namespace() -> Any:
    import jax

    # xpnet supports float64 everywhere; JAX truncates it to float32 unless asked.
    jax.config.update("jax_enable_x64", True)  # type: ignore[no-untyped-call, unused-ignore]
    return importlib.import_module("jax.numpy")


def _jax_from_host(xp: Any, obj: Any, dtype: Any, device: Any) -> Any:
    import jax
    import numpy as np

    # device_put is JAX's transfer; asarray(..., device=) adds a sharding constraint that
    # costs 3x as much per batch (measured: 60 against 197 us for 64 MNIST images).
    return jax.device_put(np.asarray(obj, dtype=dtype), device)


def _jax_devices(xp: Any) -> list[Any]:
    import jax

    return list(jax.devices())


def _jax_resolve(xp: Any, device: Any) -> Any:
    import jax

    devices = list(jax.devices())
    if device is None:
        return devices[0]
    if isinstance(device, jax.Device):
        return device
    if isinstance(device, str):
        platform, _, index = device.partition(":")
        platform = {"cuda": "gpu"}.get(platform, platform)
        try:
            candidates = jax.devices(platform)
        except RuntimeError:
            raise ValueError(f"jax has no {platform!r} devices here") from None
        i = int(index) if index.isdigit() else 0
        if i >= len(candidates):
            raise ValueError(f"jax has {len(candidates)} {platform!r} device(s), got {device!r}")
        return candidates[i]
    raise ValueError(f"expected 'cpu', 'gpu:N' or a jax.Device, got {device!r}")


# --- array_api_strict ------------------------------------------------------


def _strict_namespace() -> Any:
    return importlib.import_module("array_api_strict")


def _strict_devices(xp: Any) -> list[Any]:
    return [xp.Device()]


def _strict_resolve(xp: Any, device: Any) -> Any:
    if device is None or device == "cpu":
        return xp.Device()
    if isinstance(device, xp.Device):
        return device
    if isinstance(device, str):
        try:
            return xp.Device(device)
        except ValueError:
            pass
    raise ValueError(f"array_api_strict has devices like 'CPU_DEVICE', got {device!r}")


BUILTIN_BACKENDS: tuple[BackendSpec, ...] = (
    BackendSpec(
        name="numpy",
        module="numpy",
        load_namespace=_numpy_namespace,
        list_devices=lambda xp: ["cpu"],
        resolve_device=_numpy_resolve,
        description="NumPy on the CPU (the default)",
    ),
    BackendSpec(
        name="cupy",
        module="cupy",
        load_namespace=_cupy_namespace,
        list_devices=_cupy_devices,
        resolve_device=_cupy_resolve,
        to_host=_cupy_to_host,
        select_device=_cupy_select,
        needs_gpu=True,
        extra="cupy",
        description="CuPy on an NVIDIA GPU",
    ),
    BackendSpec(
        name="torch",
        module="torch",
        load_namespace=_torch_namespace,
        list_devices=_torch_devices,
        resolve_device=_torch_resolve,
        to_host=_torch_to_host,
        select_device=_torch_select,
        extra="torch",
        description="PyTorch tensors on the CPU or a CUDA GPU",
    ),
    BackendSpec(
        name="jax",
        module="jax",
        load_namespace=_jax_namespace,
        list_devices=_jax_devices,
        resolve_device=_jax_resolve,
        from_host=_jax_from_host,
        extra="jax",
        description="JAX arrays (64-bit enabled) on its default device",
    ),
    BackendSpec(
        name="array_api_strict",
        module="array_api_strict",
        load_namespace=_strict_namespace,
        list_devices=_strict_devices,
        resolve_device=_strict_resolve,
        extra="strict",
        description="array-api-strict: the standard and nothing more, for testing",
    ),
)
