"""One trainer for every stage; a stage is a value (data, trainable modules, optimiser, budget)."""

from sail.train.packing import pack_batch
from sail.train.stage import Stage, set_trainable, warmup_cosine
from sail.train.trainer import (
    CheckpointError,
    NonFiniteError,
    TrainResult,
    checkpoints,
    format_trainable,
    latest_checkpoint,
    make_accelerator,
    read_log,
    train,
    validation_loss,
)

__all__ = [
    "CheckpointError",
    "NonFiniteError",
    "Stage",
    "TrainResult",
    "checkpoints",
    "format_trainable",
    "latest_checkpoint",
    "make_accelerator",
    "pack_batch",
    "read_log",
    "set_trainable",
    "train",
    "validation_loss",
    "warmup_cosine",
]
