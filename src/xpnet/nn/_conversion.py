"""What moving and loading a module's arrays needs: ``to``'s arguments told apart, and
values converted to a parameter's namespace, device and dtype."""

from __future__ import annotations

from typing import Any

import array_api_compat

from .. import backends
from ..functional._autodiff import primal

__all__ = ["float_dtype", "like", "loaded_like", "parse_to", "shape_of", "writable_host"]


def float_dtype(value: Any) -> str | None:
    """``"float32"``/``"float64"`` if ``value`` names or is that dtype, else None."""
    if isinstance(value, str):
        return value if value in ("float32", "float64") else None
    # A library's dtype object or type: numpy.float64, dtype('float64'), torch.float64,
    # array_api_strict.float64 all end in the name.
    text = str(getattr(value, "name", None) or value).rsplit(".", 1)[-1].strip("'>")
    return text if text in ("float32", "float64") else None


def parse_to(args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[str | None, Any, Any]:
    unknown = set(kwargs) - {"backend", "device", "dtype"}
    if unknown:
        raise TypeError(f"to: unexpected keyword arguments {sorted(unknown)}")
    backend, device, dtype = kwargs.get("backend"), kwargs.get("device"), kwargs.get("dtype")
    names = {info.name for info in backends.list_backends()}
    for value in args:
        if isinstance(value, str) and value in names and backend is None and device is None:
            backend = value
        elif float_dtype(value) is not None and dtype is None:
            dtype = value
        elif device is None:
            device = value
        else:
            raise TypeError(f"to: cannot tell what {value!r} is (a backend, device or dtype)")
    if backend is not None and backend not in names:
        raise ValueError(f"backend: unknown backend {backend!r}; known: {', '.join(sorted(names))}")
    if dtype is not None:
        chosen = float_dtype(dtype)
        if chosen is None:
            raise ValueError(f"dtype: expected 'float32', 'float64' or None, got {dtype!r}")
        dtype = chosen
    return backend, device, dtype


def like(value: Any, current: Any) -> Any:
    """``value`` converted to ``current``'s namespace, device and dtype."""
    value = primal(value)
    xp = array_api_compat.array_namespace(current)
    device = array_api_compat.device(current)
    if array_api_compat.is_array_api_obj(value) and array_api_compat.array_namespace(value) is xp:
        source = value
    else:
        source = xp.asarray(writable_host(value), device=device)
    return xp.astype(xp.asarray(source, device=device), current.dtype, copy=True)


def loaded_like(key: str, value: Any, current: Any) -> Any:
    """A state_dict entry converted as :func:`like` does, for :meth:`Module.load_state_dict`:
    bfloat16 widened (as torch copies it); complex and NaN values refused, by key (an
    infinity may be meant: an attention mask's -inf)."""
    value = primal(value)
    dtype = str(getattr(value, "dtype", ""))
    if dtype.endswith("bfloat16") and hasattr(value, "float"):  # torch's: NumPy has none
        value = value.float()
    if "complex" in dtype:
        raise ValueError(f"{key}: complex values ({dtype}) cannot be loaded into {current.dtype}")
    if dtype == "object" or value is None:
        shown = "an object array" if value is not None else "None"
        raise TypeError(f"{key}: expected an array of numbers, got {shown}")
    try:
        converted = like(value, current)
    except (TypeError, ValueError) as exc:
        raise type(exc)(f"{key}: cannot be loaded as {current.dtype}: {exc}") from None
    xp = array_api_compat.array_namespace(converted)
    if xp.isdtype(converted.dtype, "real floating") and bool(xp.any(xp.isnan(converted))):
        raise ValueError(f"{key}: holds NaN values; a damaged or diverged state_dict?")
    if key.endswith("running_var") and bool(xp.any(converted < 0)):  # sqrt(var + eps): NaN
        raise ValueError(f"{key}: holds negative variances; a damaged state_dict?")
    return converted


def writable_host(value: Any) -> Any:
    """A host (NumPy) copy of ``value`` that may be written to.

    JAX hands out read-only host views, and torch warns when wrapping those.
    """
    host = backends.to_numpy(value)
    return host if host.flags.writeable else host.copy()


def shape_of(value: Any) -> tuple[int, ...]:
    """The shape of an array of any backend, or of host data such as nested lists."""
    shape = getattr(value, "shape", None)
    if shape is None:
        shape = backends.to_numpy(value).shape
    return tuple(int(n) for n in shape)
