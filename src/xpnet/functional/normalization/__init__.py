"""Normalisation, each with its hand-written pullback: batch norm (running statistics
returned, never mutated), and layer, group and instance norm (one standardisation kernel)."""

from ._batch import batch_norm
from ._standardize import group_norm, instance_norm, layer_norm

__all__ = ["batch_norm", "group_norm", "instance_norm", "layer_norm"]
