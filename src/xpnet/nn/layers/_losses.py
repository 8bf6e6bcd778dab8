"""Losses as modules, with ``torch.nn``'s names, arguments and ``state_dict`` entries
(class weights are buffers), each calling its op of :mod:`xpnet.functional`."""

from __future__ import annotations

from typing import Any

from ... import functional as F
from ..module import Module

__all__ = [
    "BCEWithLogitsLoss",
    "CrossEntropyLoss",
    "HuberLoss",
    "L1Loss",
    "MSELoss",
    "NLLLoss",
    "SmoothL1Loss",
]


def _no_legacy(size_average: Any, reduce: Any) -> None:
    """torch's ``size_average`` and ``reduce`` (deprecated there) are not taken here."""
    for name, value in (("size_average", size_average), ("reduce", reduce)):
        if value is not None:
            raise ValueError(
                f"{name}: deprecated in torch and not supported; use reduction='mean', 'sum' "
                "or 'none'"
            )


class _Loss(Module):
    """A loss: ``forward(input, target)`` gives the loss of ``input`` against ``target``.

    ``forward`` also takes ``reduction=`` for one call, which torch's loss modules do not:
    :func:`xpnet.evaluate` asks any loss for sums that way.
    """

    def __init__(self, reduction: str = "mean") -> None:
        super().__init__()
        self.reduction = reduction

    def _reduction(self, override: str | None) -> str:
        return self.reduction if override is None else override

    def extra_repr(self) -> str:
        return "" if self.reduction == "mean" else f"reduction={self.reduction!r}"


class CrossEntropyLoss(_Loss):
    """Cross-entropy of logits against class indices (see
    :func:`xpnet.functional.cross_entropy`), as ``torch.nn.CrossEntropyLoss``.

    Parameters
    ----------
    weight : array, optional
        Per-class weights ``(C,)``, kept as a buffer.
    size_average, reduce : None
        torch's deprecated arguments; anything but None is an error.
    ignore_index : int, default -100
    reduction : {'mean', 'sum', 'none'}, default 'mean'
    label_smoothing : float, default 0.0

    Examples
    --------
    >>> import xpnet
    >>> from xpnet import nn
    >>> loss = nn.CrossEntropyLoss()
    >>> round(float(loss(xpnet.asarray([[2.0, 0.0]]), xpnet.asarray([0]))), 4)
    0.1269
    """

    def __init__(
        self,
        weight: Any = None,
        size_average: Any = None,
        ignore_index: int = -100,
        reduce: Any = None,
        reduction: str = "mean",
        label_smoothing: float = 0.0,
    ) -> None:
        _no_legacy(size_average, reduce)
        super().__init__(reduction)
        self.register_buffer("weight", weight)
        self.ignore_index, self.label_smoothing = ignore_index, label_smoothing

    def forward(self, input: Any, target: Any, reduction: str | None = None) -> Any:
        return F.cross_entropy(
            input,
            target,
            weight=self._buffers["weight"],
            ignore_index=self.ignore_index,
            reduction=self._reduction(reduction),
            label_smoothing=self.label_smoothing,
        )


class NLLLoss(_Loss):
    """Negative log-likelihood of log-probabilities against class indices (see
    :func:`xpnet.functional.nll_loss`), as ``torch.nn.NLLLoss``; arguments as
    :class:`CrossEntropyLoss` without ``label_smoothing``."""

    def __init__(
        self,
        weight: Any = None,
        size_average: Any = None,
        ignore_index: int = -100,
        reduce: Any = None,
        reduction: str = "mean",
    ) -> None:
        _no_legacy(size_average, reduce)
        super().__init__(reduction)
        self.register_buffer("weight", weight)
        self.ignore_index = ignore_index

    def forward(self, input: Any, target: Any, reduction: str | None = None) -> Any:
        return F.nll_loss(
            input,
            target,
            weight=self._buffers["weight"],
            ignore_index=self.ignore_index,
            reduction=self._reduction(reduction),
        )


class MSELoss(_Loss):
    """Mean squared error (see :func:`xpnet.functional.mse_loss`), as
    ``torch.nn.MSELoss``."""

    def __init__(
        self, size_average: Any = None, reduce: Any = None, reduction: str = "mean"
    ) -> None:
        _no_legacy(size_average, reduce)
        super().__init__(reduction)

    def forward(self, input: Any, target: Any, reduction: str | None = None) -> Any:
        return F.mse_loss(input, target, reduction=self._reduction(reduction))


class L1Loss(_Loss):
    """Mean absolute error (see :func:`xpnet.functional.l1_loss`), as
    ``torch.nn.L1Loss``."""

    def __init__(
        self, size_average: Any = None, reduce: Any = None, reduction: str = "mean"
    ) -> None:
        _no_legacy(size_average, reduce)
        super().__init__(reduction)

    def forward(self, input: Any, target: Any, reduction: str | None = None) -> Any:
        return F.l1_loss(input, target, reduction=self._reduction(reduction))


class SmoothL1Loss(_Loss):
    """Smooth L1 (see :func:`xpnet.functional.smooth_l1_loss`), as
    ``torch.nn.SmoothL1Loss``."""

    def __init__(
        self,
        size_average: Any = None,
        reduce: Any = None,
        reduction: str = "mean",
        beta: float = 1.0,
    ) -> None:
        _no_legacy(size_average, reduce)
        super().__init__(reduction)
        self.beta = beta

    def forward(self, input: Any, target: Any, reduction: str | None = None) -> Any:
        return F.smooth_l1_loss(input, target, reduction=self._reduction(reduction), beta=self.beta)


class HuberLoss(_Loss):
    """Huber loss (see :func:`xpnet.functional.huber_loss`), as ``torch.nn.HuberLoss``."""

    def __init__(self, reduction: str = "mean", delta: float = 1.0) -> None:
        super().__init__(reduction)
        self.delta = delta

    def forward(self, input: Any, target: Any, reduction: str | None = None) -> Any:
        return F.huber_loss(input, target, reduction=self._reduction(reduction), delta=self.delta)


class BCEWithLogitsLoss(_Loss):
    """Binary cross-entropy on logits (see
    :func:`xpnet.functional.binary_cross_entropy_with_logits`), as
    ``torch.nn.BCEWithLogitsLoss``; ``weight`` and ``pos_weight`` are buffers."""

    def __init__(
        self,
        weight: Any = None,
        size_average: Any = None,
        reduce: Any = None,
        reduction: str = "mean",
        pos_weight: Any = None,
    ) -> None:
        _no_legacy(size_average, reduce)
        super().__init__(reduction)
        self.register_buffer("weight", weight)
        self.register_buffer("pos_weight", pos_weight)

    def forward(self, input: Any, target: Any, reduction: str | None = None) -> Any:
        return F.binary_cross_entropy_with_logits(
            input,
            target,
            weight=self._buffers["weight"],
            reduction=self._reduction(reduction),
            pos_weight=self._buffers["pos_weight"],
        )
