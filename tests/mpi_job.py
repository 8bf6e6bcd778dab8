"""A data-parallel training job for tests/test_distributed.py, run under mpiexec.

    mpiexec -n N python -m mpi4py tests/mpi_job.py OUT_DIR [--fail-rank R | --own-loop | --clip]

Trains a small float64 CNN with SGD and momentum for 3 epochs (global batch 32 over 60
examples: the last batch splits unevenly) and writes each rank's final weights to
OUT_DIR/rank<R>.npz; rank 0 also writes OUT_DIR/run.safetensors and, in OUT_DIR/path.txt,
how the last allreduce moved its buffer. With --fail-rank R, that rank raises in its second
epoch. With --own-loop, a loop of its own (ShardedLoader, value-and-grad and a
DistributedOptimizer) replaces fit and writes only the weights. With --clip, fit clips the
averaged gradients' norm to CLIP. The backend is XPNET_BACKEND's.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

import xpnet
from xpnet import data, distributed, nn, optim
from xpnet import functional as F
from xpnet.train import fit
from xpnet.train import loop as loop_module

CLIP = 0.1  # below the gradients' norms of this job: --clip changes every step


def build() -> tuple[nn.Module, optim.Optimizer, data.DataLoader, data.DataLoader]:
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 3, 60).astype(np.int64)
    images = rng.integers(0, 255, (60, 1, 8, 8)).astype(np.uint8)
    for i, c in enumerate(labels):
        images[i, 0, 2 * c : 2 * c + 2] = 250
    dataset = data.Dataset(images, labels, 3, name="blobs")
    init = np.random.default_rng(1)
    model = nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1, rng=init, dtype="float64"),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(64, 3, rng=init, dtype="float64"),
    )
    optimizer = optim.SGD(model, lr=0.05, momentum=0.9)
    train = data.DataLoader(dataset, batch_size=32, shuffle=True, seed=3, dtype="float64")
    test = data.DataLoader(dataset, batch_size=25, dtype="float64")
    return model, optimizer, train, test


def own_loop(
    model: nn.Module,
    optimizer: optim.Optimizer,
    train: data.DataLoader,
    comm: distributed.Communicator,
) -> None:
    """What fit does with comm=, written out with the public pieces."""
    distributed.broadcast_parameters(model, comm)
    averaging = distributed.DistributedOptimizer(optimizer, comm)
    shards = distributed.ShardedLoader(train, comm)
    for epoch in range(1, 4):
        shards.set_epoch(epoch)  # fit numbers epochs from 1: the same shuffles
        for x, y in shards:
            assert y.shape[0] > 0  # 60 examples in batches of 32: every share has some
            _, grads = nn.value_and_grad(model, F.cross_entropy, x, y)
            averaging.step(grads, count=int(y.shape[0]))


def main() -> None:
    out = Path(sys.argv[1])
    fail_rank = int(sys.argv[3]) if len(sys.argv) > 3 and sys.argv[2] == "--fail-rank" else None
    comm = distributed.init()
    name = xpnet.get_backend().name
    xpnet.set_backend(name, comm.device_for(name))  # one GPU per process, where there are GPUs
    if fail_rank == comm.rank:
        real = loop_module._train_epoch

        def failing(*args: object) -> object:
            if args[3] == 2:
                raise RuntimeError(f"rank {comm.rank} fails on purpose")
            return real(*args)  # type: ignore[arg-type]

        loop_module._train_epoch = failing  # type: ignore[assignment]
    model, optimizer, train, test = build()
    if "--own-loop" in sys.argv:
        own_loop(model, optimizer, train, comm)
        weights = {key: xpnet.to_numpy(value) for key, value in model.state_dict().items()}
        np.savez(out / f"rank{comm.rank}.npz", **weights)
        return
    clip = CLIP if "--clip" in sys.argv else None
    history = fit(model, optimizer, train, 3, test_loader=test, checkpoint=out / "run.safetensors",
                  progress=False, log=None, comm=comm, clip_grad_norm=clip)  # fmt: skip
    weights = {key: xpnet.to_numpy(value) for key, value in model.state_dict().items()}
    np.savez(out / f"rank{comm.rank}.npz", **weights)
    if comm.is_root:
        np.save(out / "history.npy", np.asarray([[h["loss"], h["test_accuracy"]] for h in history]))
        (out / "path.txt").write_text(comm.last_path)


if __name__ == "__main__":
    main()
