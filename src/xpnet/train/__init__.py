"""Training and evaluation loops, and safetensors checkpoints."""

from .checkpoint import (
    Checkpoint,
    CheckpointError,
    architecture_mismatch,
    load_checkpoint,
    save_checkpoint,
)
from .loop import TrainingDiverged, evaluate, fit, train_step

__all__ = [
    "Checkpoint",
    "CheckpointError",
    "TrainingDiverged",
    "architecture_mismatch",
    "evaluate",
    "fit",
    "load_checkpoint",
    "save_checkpoint",
    "train_step",
]
