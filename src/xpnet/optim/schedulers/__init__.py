"""Learning-rate schedules with ``torch.optim.lr_scheduler``'s rules: by epoch (StepLR,
MultiStepLR, ExponentialLR, CosineAnnealingLR, LinearLR), one after another
(SequentialLR), per batch (OneCycleLR) and from a metric (ReduceLROnPlateau)."""

from ._base import LRScheduler
from ._composite import OneCycleLR, ReduceLROnPlateau, SequentialLR
from ._epoch import CosineAnnealingLR, ExponentialLR, LinearLR, MultiStepLR, StepLR

__all__ = [
    "CosineAnnealingLR",
    "ExponentialLR",
    "LRScheduler",
    "LinearLR",
    "MultiStepLR",
    "OneCycleLR",
    "ReduceLROnPlateau",
    "SequentialLR",
    "StepLR",
]
