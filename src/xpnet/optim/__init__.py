"""Optimizers and learning-rate schedules with ``torch.optim``'s update rules.

An optimizer is built from a model and takes the gradients that
:func:`xpnet.value_and_grad` returns::

    opt = optim.Adam(model, lr=1e-3)
    loss, grads = xpnet.value_and_grad(model, F.cross_entropy, x, y)
    opt.step(grads)

``step`` writes new arrays into the model (arrays need not be mutable), updating every
parameter at once in flat buffers. The optimizer's state (step counts, moment buffers)
round-trips through :meth:`Optimizer.state_dict`, so a checkpoint resumes exactly.
"""

from .adaptive import Adadelta, Adagrad, RMSprop
from .optimizer import Optimizer, ParamGroup
from .rules import SGD, Adam, AdamW
from .schedulers import (
    CosineAnnealingLR,
    ExponentialLR,
    LinearLR,
    LRScheduler,
    MultiStepLR,
    OneCycleLR,
    ReduceLROnPlateau,
    SequentialLR,
    StepLR,
)

__all__ = [
    "SGD",
    "Adadelta",
    "Adagrad",
    "Adam",
    "AdamW",
    "CosineAnnealingLR",
    "ExponentialLR",
    "LRScheduler",
    "LinearLR",
    "MultiStepLR",
    "OneCycleLR",
    "Optimizer",
    "ParamGroup",
    "RMSprop",
    "ReduceLROnPlateau",
    "SequentialLR",
    "StepLR",
]
