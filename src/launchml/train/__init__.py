"""Stage 2: the training loop (Lightning Fabric), its config and speed settings."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from launchml.train.augment import AugmentConfig
from launchml.train.config import TrainConfig

if TYPE_CHECKING:
    from launchml.train.trainer import Trainer, TrainResult, resume_key

# the loop imports torch and Lightning Fabric: loaded on first use, so the configs load fast
_LAZY = {"Trainer", "TrainResult", "resume_key"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        from launchml.train import trainer

        value = globals()[name] = getattr(trainer, name)
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["AugmentConfig", "TrainConfig", "TrainResult", "Trainer", "resume_key"]
