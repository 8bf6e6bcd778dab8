"""What the checkpoint checksums cost: saving and loading with and without them.

    python benchmarks/checkpoint_io.py                 # LeNet-5 + Adam, and a 100 MB file
    python benchmarks/checkpoint_io.py --repeats 31

``save_checkpoint`` computes CRC32C checksums of the tensor data (whole and tensor by
tensor) and of the header, and ``load_checkpoint`` reads the file through one handle and
verifies them. The baseline is the writer and reader before checksums, rebuilt here step
for step: safetensors' own ``save`` into the same atomic writer, and a header check, then
safetensors' ``load`` of the bytes read again (three opens), with the same schema checks.
All take turns within every repeat; the table gives the medians and the checksummed
version's time over the baseline. Then a 100 MB checkpoint (one float32 tensor) is loaded,
against reading its bytes alone and with their checksum: the load runs at the speed of
reading the file (here from the page cache).
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
from pathlib import Path
from typing import Any

import crc32c
import numpy as np
from zoo import interleaved_ms  # this folder is on the path when run as a script

from xpnet import models, optim
from xpnet._atomic import replacing
from xpnet.train import Checkpoint, load_checkpoint, save_checkpoint
from xpnet.train import checkpoint as module


def _previous_save(path: Path, checkpoint: Checkpoint) -> None:
    """The writer before checksums: safetensors' serializer, then the atomic write."""
    from safetensors.numpy import save

    tensors = {f"model/{k}": np.asarray(v) for k, v in checkpoint.model.items()}
    scalars = {}
    for key, value in checkpoint.optimizer.items():
        if isinstance(value, bool | int | float | str) or value is None:
            scalars[key] = value
        else:
            tensors[f"optimizer/{key}"] = np.asarray(value)
    metadata = {"format": module.FORMAT, "model_keys": json.dumps(list(checkpoint.model)),
                "optimizer_keys": json.dumps(list(checkpoint.optimizer)),
                "meta": json.dumps(checkpoint.meta), "optimizer": json.dumps(scalars)}  # fmt: skip
    payload = save(tensors, metadata=metadata)
    with replacing(path, lock=True) as stream:
        stream.write(payload)


def _previous_load(path: Path) -> dict[str, np.ndarray]:
    """The reader before checksums: stat, the header read on its own, then every byte again."""
    from safetensors.numpy import load

    size = path.stat().st_size
    with open(path, "rb") as stream:
        header_size = int.from_bytes(stream.read(8), "little")
        header = json.loads(stream.read(header_size))
    assert 8 + header_size <= size
    assert isinstance(header, dict)
    tensors = load(path.read_bytes())
    assert all(np.isfinite(v).all() for v in tensors.values() if v.dtype.kind == "f")
    module.check_meta(json.loads(header["__metadata__"]["meta"]), path)
    return tensors


def _repeated(step: Any, times: int) -> Any:
    def run() -> None:
        for _ in range(times):
            step()

    return run


def _lenet_checkpoint() -> Checkpoint:
    import xpnet

    model = models.lenet5(rng=0)
    opt = optim.Adam(model)
    rng = np.random.default_rng(0)
    opt.step({k: xpnet.asarray(rng.standard_normal(v.shape).astype(np.float32))
              for k, v in model.named_parameters()})  # fmt: skip
    state = {k: np.asarray(xpnet.to_numpy(v)) if np.ndim(v) else v
             for k, v in opt.state_dict().items()}  # fmt: skip
    weights = {k: np.asarray(v) for k, v in model.state_dict().items()}
    meta = {"epoch": 1, "history": [{"loss": 0.1}], "model": "lenet5"}
    return Checkpoint(model=weights, optimizer=state, meta=meta)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=21)
    parser.add_argument("--inner", type=int, default=20, help="calls per sample")
    args = parser.parse_args(argv)
    folder = Path(tempfile.mkdtemp(prefix="xpnet-ckpt-bench-"))
    checkpoint = _lenet_checkpoint()
    new, old = folder / "checksums.safetensors", folder / "previous.safetensors"
    steps = {
        "save, checksums": lambda: save_checkpoint(new, checkpoint),
        "save, before": lambda: _previous_save(old, checkpoint),
        "load, checksums": lambda: load_checkpoint(new),
        "load, before": lambda: _previous_load(old),
    }
    # A sample is the mean of --inner calls: one sub-millisecond call alone mostly times
    # whatever the step before it (a save's fsync) left in the caches.
    times = interleaved_ms({name: _repeated(step, args.inner) for name, step in steps.items()},
                           args.repeats)  # fmt: skip
    times = {name: [ms / args.inner for ms in values] for name, values in times.items()}
    size = new.stat().st_size / 2**20
    print(f"LeNet-5 with Adam's state: {size:.2f} MiB; medians of {args.repeats} samples, "
          f"each the mean of {args.inner} calls")  # fmt: skip
    print("| step | before ms | checksums ms | ratio |")
    print("|---|---:|---:|---:|")
    for step in ("save", "load"):
        before = statistics.median(times[f"{step}, before"])
        after = statistics.median(times[f"{step}, checksums"])
        print(f"| {step} | {before:.2f} | {after:.2f} | {after / before:.2f} |")

    big = folder / "big.safetensors"
    weights = {"w": np.random.default_rng(1).random(25 * 2**20, dtype=np.float32)}
    save_checkpoint(big, Checkpoint(model=weights, meta={"model": "big"}))
    megabytes = big.stat().st_size / 1e6

    def read_and_checksum() -> Any:
        return crc32c.crc32c(big.read_bytes())

    big_times = interleaved_ms(
        {"read": big.read_bytes, "read + crc32c": read_and_checksum, "load_checkpoint": lambda:
         load_checkpoint(big)}, max(5, args.repeats // 3))  # fmt: skip
    print(f"\n{megabytes:.0f} MB checkpoint (page cache warm), medians")
    print("| step | ms | MB/s |")
    print("|---|---:|---:|")
    for name, values in big_times.items():
        ms = statistics.median(values)
        print(f"| {name} | {ms:.1f} | {megabytes / ms * 1e3:.0f} |")
    for path in folder.iterdir():
        path.unlink()
    folder.rmdir()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
