"""``TrainConfig``: the ``train:`` section of a run config.

Kept apart from ``train/trainer.py`` (the torch loop) so that ``launchml.config``
validates configs without importing torch; ``launchml.train.trainer.TrainConfig``
is the same class.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from launchml.configbase import StrictModel
from launchml.train.augment import AugmentConfig


class TrainConfig(StrictModel):
    """``train:`` the loop, the optimizer and the speed settings."""

    epochs: int = Field(10, ge=1, le=1_000_000)
    batch_size: int = Field(32, ge=1)
    optimizer: Literal["adam", "adamw", "sgd"] = "adam"
    learning_rate: float = Field(1e-3, gt=0.0)
    weight_decay: float = Field(0.0, ge=0.0)
    momentum: float = Field(0.9, ge=0.0, lt=1.0, description="sgd only")
    scheduler: Literal["none", "cosine", "onecycle"] = "none"
    monitor: Literal["val_loss", "val_accuracy"] = Field(
        "val_loss", description="picks the best checkpoint and drives early stopping"
    )
    patience: int | None = Field(None, ge=1, description="early stopping; null = off")
    precision: Literal["auto", "fp32", "bf16"] = Field(
        "auto", description="auto: bf16 on GPUs that support it and, for image networks, on "
        "CPUs with native bf16 (AVX512-BF16, AMX); fp32 elsewhere"
    )
    accelerator: Literal["auto", "cpu", "gpu", "cuda"] = "auto"
    channels_last: bool | Literal["auto"] = Field(
        "auto", description="NHWC memory layout for convolutions; auto: on GPUs and, for "
        "image networks, on AVX-512 CPUs"
    )
    compile: bool | Literal["auto"] = Field(
        "auto", description="torch.compile; auto: on GPUs for runs long enough to repay it"
    )
    data_on_device: bool | Literal["auto"] = Field(
        "auto", description="move the whole image array to the device when it fits"
    )
    num_threads: int | None = Field(None, ge=1, description="CPU threads; null = all cores")
    augment: AugmentConfig = Field(default_factory=AugmentConfig)
