"""Stage 2: the training loop (Lightning Fabric), its config and speed settings."""

from launchml.train.augment import AugmentConfig
from launchml.train.trainer import TrainConfig, Trainer, TrainResult, resume_key

__all__ = ["AugmentConfig", "TrainConfig", "TrainResult", "Trainer", "resume_key"]
