"""Augmentation on uint8 image tensors (N, H, W, C), on whatever device holds them.

Everything is vectorized per batch and driven by an explicit torch.Generator,
so a resumed run draws the same augmentations as an uninterrupted one.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pydantic import Field

from launchml.configbase import StrictModel

if TYPE_CHECKING:
    import torch


class AugmentConfig(StrictModel):
    """``train.augment:`` opt-in augmentations (all off by default)."""

    flip: bool = Field(False, description="random horizontal flip")
    crop: int = Field(0, ge=0, description="pad by this many pixels, then random-crop back")
    color_jitter: float = Field(0.0, ge=0.0, lt=1.0, description="brightness/contrast +-")

    @property
    def active(self) -> bool:
        return self.flip or self.crop > 0 or self.color_jitter > 0


def augment(x: torch.Tensor, cfg: AugmentConfig, gen: torch.Generator) -> torch.Tensor:
    """Return an augmented float copy of the uint8 batch ``x`` (N, H, W, C)."""
    import torch

    n, h, w, _ = x.shape
    dev = x.device

    def rand(*shape: int) -> torch.Tensor:
        return torch.rand(*shape, generator=gen, device=gen.device).to(dev)

    if cfg.crop:
        p = cfg.crop
        padded = torch.nn.functional.pad(x.permute(0, 3, 1, 2).float(), (p, p, p, p),
                                         mode="reflect").permute(0, 2, 3, 1)
        oy = (rand(n) * (2 * p + 1)).long()
        ox = (rand(n) * (2 * p + 1)).long()
        rows = (oy[:, None] + torch.arange(h, device=dev))[:, :, None]
        cols = (ox[:, None] + torch.arange(w, device=dev))[:, None, :]
        x = padded[torch.arange(n, device=dev)[:, None, None], rows, cols]
    else:
        x = x.float()
    if cfg.flip:
        flip = rand(n) < 0.5
        x = torch.where(flip[:, None, None, None], x.flip(2), x)
    if cfg.color_jitter:
        j = cfg.color_jitter
        bright = 1 + (rand(n, 1, 1, 1) * 2 - 1) * j
        contrast = 1 + (rand(n, 1, 1, 1) * 2 - 1) * j
        mean = x.mean(dim=(1, 2, 3), keepdim=True)
        x = ((x - mean) * contrast + mean) * bright
        x = x.clamp(0, 255)
    return x
