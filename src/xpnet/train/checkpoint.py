"""Checkpoints in safetensors: arrays plus JSON metadata, written atomically.

safetensors holds raw arrays and a string header, so loading a checkpoint never runs code
(unlike pickle). A checkpoint is written to a temporary file in the same folder, flushed
to disk, then renamed over the old one: an interrupted run leaves the previous checkpoint
intact.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .. import backends

try:  # POSIX
    import fcntl

    HAVE_FLOCK = True
except ImportError:  # pragma: no cover - Windows
    HAVE_FLOCK = False

__all__ = [
    "Checkpoint",
    "CheckpointError",
    "architecture_mismatch",
    "load_checkpoint",
    "save_checkpoint",
]

FORMAT = "xpnet-checkpoint/1"


class CheckpointError(ValueError):
    """A checkpoint file is missing, unreadable, or not an xpnet checkpoint."""


@dataclass
class Checkpoint:
    """What a checkpoint holds.

    Attributes
    ----------
    model : dict
        The model's ``state_dict`` as NumPy arrays.
    optimizer : dict
        The optimizer's ``state_dict`` (arrays as NumPy, scalars as Python numbers).
    meta : dict
        JSON-serialisable facts: epoch, model name and shape, training settings, history,
        scheduler and random-generator state.
    """

    model: dict[str, np.ndarray]
    optimizer: dict[str, Any] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)


def architecture_mismatch(
    expected: Mapping[str, Any], found: Mapping[str, Any], found_name: str = "checkpoint"
) -> str | None:
    """Say how two state dicts differ, or ``None`` if keys and shapes all agree.

    Parameters
    ----------
    expected : mapping
        The model's ``state_dict`` (arrays of any backend).
    found : mapping
        The other one, e.g. a checkpoint's weights.
    found_name : str, default "checkpoint"
        What to call ``found`` in the message.

    Returns
    -------
    str or None
        Every key whose shape differs (both shapes), every key missing from ``found`` and
        every key ``found`` has in excess (with its shape).

    Examples
    --------
    >>> import numpy as np
    >>> from xpnet.train import architecture_mismatch
    >>> model = {"0.weight": np.zeros((6, 1, 5, 5)), "0.bias": np.zeros(6)}
    >>> saved = {"0.weight": np.zeros((16, 1, 3, 3)), "1.weight": np.zeros(2)}
    >>> for part in architecture_mismatch(model, saved).split("; "):
    ...     print(part)
    shapes differ: 0.weight (model (6, 1, 5, 5), checkpoint (16, 1, 3, 3))
    missing from the checkpoint: 0.bias (6,)
    not in the model: 1.weight (2,)
    """

    def shape(value: Any) -> tuple[int, ...]:
        return tuple(int(n) for n in getattr(value, "shape", np.shape(value)))

    parts = []
    differ = [
        f"{key} (model {shape(value)}, {found_name} {shape(found[key])})"
        for key, value in expected.items()
        if key in found and shape(found[key]) != shape(value)
    ]
    missing = [f"{key} {shape(value)}" for key, value in expected.items() if key not in found]
    extra = [f"{key} {shape(value)}" for key, value in found.items() if key not in expected]
    if differ:
        parts.append("shapes differ: " + ", ".join(differ))
    if missing:
        parts.append(f"missing from the {found_name}: " + ", ".join(missing))
    if extra:
        parts.append("not in the model: " + ", ".join(extra))
    return "; ".join(parts) or None


def _host(value: Any) -> np.ndarray:
    # np.asarray(order="C"), not ascontiguousarray: that one turns 0-d arrays into 1-d.
    return np.asarray(backends.to_numpy(value), order="C")


def save_checkpoint(path: str | os.PathLike[str], checkpoint: Checkpoint) -> Path:
    """Write ``checkpoint`` to ``path`` atomically (safetensors format).

    The bytes go to a temporary file in the same folder, are flushed to disk, and the
    file is renamed over ``path``: at every moment ``path`` holds either the previous
    checkpoint or the new one, never a partial write, even if the process is killed.

    Parameters
    ----------
    path : path-like
        Where to write (conventionally ``*.safetensors``); parent folders are created.
    checkpoint : Checkpoint
        Arrays of any backend (copied to the host) and JSON-serialisable metadata.

    Returns
    -------
    Path
        The path written.
    """
    from safetensors.numpy import save

    target = Path(path)
    tensors: dict[str, np.ndarray] = {}
    for key, value in checkpoint.model.items():
        tensors[f"model/{key}"] = _host(value)
    scalars: dict[str, Any] = {}
    for key, value in checkpoint.optimizer.items():
        if isinstance(value, bool | int | float | str) or value is None:
            scalars[key] = value
        else:
            tensors[f"optimizer/{key}"] = _host(value)
    metadata = {
        "format": FORMAT,
        # safetensors sorts its entries; keep the state_dict's order (torch's) as well.
        "model_keys": json.dumps(list(checkpoint.model)),
        "optimizer_keys": json.dumps(list(checkpoint.optimizer)),
        "meta": json.dumps(checkpoint.meta),
        "optimizer": json.dumps(scalars),
    }
    payload = save(tensors, metadata=metadata)
    target.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(
        prefix=f".{target.name}.", suffix=".tmp", dir=target.parent
    )
    try:
        with os.fdopen(handle, "wb") as stream:
            if HAVE_FLOCK:
                # Held while writing: whoever cleans up abandoned temporaries skips it.
                fcntl.flock(stream.fileno(), fcntl.LOCK_EX)
            stream.write(payload)
            stream.flush()
            os.fsync(stream.fileno())
        # mkstemp makes the file private (0600); give it the mode a plain open() would.
        os.chmod(temporary, 0o666 & ~_umask())
        os.replace(temporary, target)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    _fsync_directory(target.parent)
    return target


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _fsync_directory(folder: Path) -> None:
    """Make the rename itself durable (POSIX); a no-op where folders cannot be opened."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _ordered(table: dict[str, Any], order: list[str]) -> dict[str, Any]:
    known = [key for key in order if key in table]
    return {key: table[key] for key in [*known, *(k for k in table if k not in known)]}


def load_checkpoint(path: str | os.PathLike[str]) -> Checkpoint:
    """Read a checkpoint written by :func:`save_checkpoint`.

    Parameters
    ----------
    path : path-like
        A ``.safetensors`` file written by xpnet.

    Returns
    -------
    Checkpoint
        Arrays as NumPy arrays on the host.

    Raises
    ------
    CheckpointError
        Naming the file, when it is missing, unreadable, not safetensors, or not an
        xpnet checkpoint.
    """
    from safetensors import SafetensorError
    from safetensors.numpy import load

    source = Path(path)
    if not source.is_file():
        raise CheckpointError(f"{source}: checkpoint not found")
    try:
        data = source.read_bytes()
    except OSError as exc:
        raise CheckpointError(f"{source}: cannot be read ({exc})") from None
    try:
        tensors = load(data)
        header_size = int.from_bytes(data[:8], "little")
        header = json.loads(data[8 : 8 + header_size])
        metadata: Mapping[str, str] = header.get("__metadata__") or {}
        if metadata.get("format") != FORMAT:
            raise CheckpointError(
                f"{source}: not an xpnet checkpoint (format {metadata.get('format')!r}, "
                f"expected {FORMAT!r})"
            )
        meta = json.loads(metadata.get("meta", "{}"))
        optimizer: dict[str, Any] = json.loads(metadata.get("optimizer", "{}"))
        keys: list[str] = json.loads(metadata.get("model_keys", "[]"))
        optimizer_keys: list[str] = json.loads(metadata.get("optimizer_keys", "[]"))
    except CheckpointError:
        raise
    except (SafetensorError, ValueError, UnicodeDecodeError, AttributeError) as exc:
        raise CheckpointError(f"{source}: not a readable safetensors file ({exc})") from None
    model = {k[len("model/") :]: v for k, v in tensors.items() if k.startswith("model/")}
    optimizer.update(
        {k[len("optimizer/") :]: v for k, v in tensors.items() if k.startswith("optimizer/")}
    )
    model, optimizer = _ordered(model, keys), _ordered(optimizer, optimizer_keys)
    return Checkpoint(model=model, optimizer=optimizer, meta=meta)
