"""Losses, each with its pullback, one family per module: class-index losses
(cross-entropy, negative log-likelihood), regression losses, binary cross-entropy on
logits."""

from ._binary import binary_cross_entropy_with_logits
from ._classes import cross_entropy, nll_loss
from ._regression import huber_loss, l1_loss, mse_loss, smooth_l1_loss

__all__ = [
    "binary_cross_entropy_with_logits",
    "cross_entropy",
    "huber_loss",
    "l1_loss",
    "mse_loss",
    "nll_loss",
    "smooth_l1_loss",
]
