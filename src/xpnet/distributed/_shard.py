"""Each process's share of every global batch."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np

from ..data import DataLoader
from ._comm import Communicator

__all__ = ["ShardedLoader"]


class ShardedLoader:
    """A :class:`~xpnet.data.DataLoader` whose every batch is split over the processes.

    All processes draw the same per-epoch order (the loader's seed and epoch), cut it into
    the same global batches of ``loader.batch_size``, and each takes its contiguous share
    of each batch (shares differ by at most one example; a process may get none of a small
    last batch). So ``batch_size`` stays the global batch, whatever the number of processes.

    Parameters
    ----------
    loader : DataLoader
        The loader every process builds identically.
    comm : Communicator
    """

    def __init__(self, loader: DataLoader, comm: Communicator) -> None:
        self.loader = loader
        self.comm = comm

    def __len__(self) -> int:
        return len(self.loader)

    def __getattr__(self, name: str) -> Any:
        # dataset, batch_size, shuffle, seed, epoch...: the wrapped loader's.
        return getattr(self.loader, name)

    def set_epoch(self, epoch: int) -> None:
        """Choose which epoch's order the next iteration uses (as the loader's)."""
        self.loader.set_epoch(epoch)

    def share(self, index: np.ndarray) -> np.ndarray:
        """This process's part of one global batch's example indices."""
        return np.array_split(index, self.comm.size)[self.comm.rank]

    def __iter__(self) -> Iterator[tuple[Any, Any]]:
        loader = self.loader
        order = loader.order(loader.epoch)
        loader.epoch += 1
        stop = len(loader) * loader.batch_size if loader.drop_last else len(order)
        for start in range(0, stop, loader.batch_size):
            index = self.share(order[start : start + loader.batch_size])
            yield loader.to_backend(loader.dataset.images[index], loader.dataset.labels[index])
