"""Training and evaluation loops, compiled training steps, and safetensors checkpoints."""

from .checkpoint import (
    Checkpoint,
    CheckpointError,
    UnverifiedCheckpointWarning,
    architecture_mismatch,
    load_checkpoint,
    save_checkpoint,
)
from .compile import CompileWarning, TrainStep, compile_step
from .loop import TrainingDiverged, evaluate, fit, train_step

__all__ = [
    "Checkpoint",
    "CheckpointError",
    "CompileWarning",
    "TrainStep",
    "TrainingDiverged",
    "UnverifiedCheckpointWarning",
    "architecture_mismatch",
    "compile_step",
    "evaluate",
    "fit",
    "load_checkpoint",
    "save_checkpoint",
    "train_step",
]
