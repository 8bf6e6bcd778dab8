"""Pooling (max, average, adaptive average and max) over 1-, 2- and 3-D windows, and the
pullbacks. The 2-D ops are the core; :mod:`._nd` builds the 1-D and 3-D ones on them, and
:mod:`._adaptive` handles every rank itself.

The 2-D ops:

Everything is standard-only, with no scatter and no in-place writes:

* the forward pads (``-inf`` for max, zeros for average) and reads the windows with strided
  slices (average pooling sums them separably: kH row slices, then kW column slices);
* the pullback sends gradients back with :func:`~._windows.fold_windows` (col2im), except
  when the windows tile the input (``stride == kernel_size``, no padding, dilation or
  ceil-mode overhang): disjoint windows go back with one reshape, measured 2-4x faster.

On a launch-bound device (a GPU) tiling max pooling keeps each window's ``argmax`` from the
forward pass and its pullback is one one-hot select: 3 launches each way, where the running
first-maximum that is fastest on a CPU costs about 8 per kernel offset.
"""

from ._adaptive import (
    adaptive_avg_pool1d,
    adaptive_avg_pool2d,
    adaptive_avg_pool3d,
    adaptive_max_pool1d,
    adaptive_max_pool2d,
    adaptive_max_pool3d,
)
from ._average import avg_pool2d
from ._max import max_pool2d
from ._nd import avg_pool1d, avg_pool3d, max_pool1d, max_pool3d

__all__ = [
    "adaptive_avg_pool1d",
    "adaptive_avg_pool2d",
    "adaptive_avg_pool3d",
    "adaptive_max_pool1d",
    "adaptive_max_pool2d",
    "adaptive_max_pool3d",
    "avg_pool1d",
    "avg_pool2d",
    "avg_pool3d",
    "max_pool1d",
    "max_pool2d",
    "max_pool3d",
]
