"""Model families, one file per family, built by one factory.

``create_model(spec, schema, task)`` returns an ``nn.Module`` whose forward
takes one keyword tensor per input column (``image``: N x H x W x C raw pixel
values, float or uint8) and returns raw outputs (logits). Families register
themselves with ``@register_family``; ``timm:<name>`` selects any timm backbone.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable
from typing import Any, Literal

import torch
from pydantic import Field, field_validator

from launchml.configbase import StrictModel
from launchml.data.schema import Schema
from launchml.errors import ModelError
from launchml.tasks import Task

# image networks (seed_cnn, timm): the backbones behind the image families and the
# image-column encoder. The model families themselves are ``models.families.FAMILIES``.
NETWORKS: dict[str, Callable[..., torch.nn.Module]] = {}
PREFIXED = ("timm:",)
# families that are not image networks, and 'auto'
OTHER_FAMILIES = ("auto", "lightgbm", "linear", "mlp")


def is_network(name: str) -> bool:
    """True for an image network family name: seed_cnn or timm:<architecture>."""
    return name in NETWORKS or any(name.startswith(p) and len(name) > len(p) for p in PREFIXED)


class ModelConfig(StrictModel):
    """``model:`` which family to train and its options."""

    name: str = Field("auto", description="auto (images: seed_cnn; tables: the best of "
                      "lightgbm, linear and mlp on validation, maybe an ensemble), seed_cnn, "
                      "timm:<backbone> e.g. timm:resnet18, lightgbm, linear, or mlp (the neural "
                      "combiner: one encoder per column feeding a shared head)")
    pretrained: bool | str = Field(
        False,
        description="timm only: true (download), a local weights file, or hf-hub:<repo>",
    )
    dropout: float = Field(0.0, ge=0.0, lt=1.0, description="dropout before the output layer")
    # -- tables: model selection -------------------------------------------------
    families: list[str] | None = Field(
        None, description="auto: the families to try; null: every family that fits the data")
    time_limit: float | None = Field(
        None, gt=0, description="auto: seconds for all families together; null: no limit")
    ensemble: bool = Field(True, description="auto: weighted ensemble of the best families "
                           "when it beats the best one on validation")
    refit: bool | None = Field(None, description="refit the chosen families on train + "
                               "validation with the settings early stopping found; null: true "
                               "for tables, false for image folders (filled in the saved config)")
    class_weight: Literal["none", "balanced"] = Field(
        "none", description="balanced: weight classes by inverse frequency (imbalanced data)")
    threshold: Literal["accuracy", "f1", "balanced_accuracy", "none"] | float = Field(
        "accuracy", description="binary: decision threshold tuned on validation for this "
        "metric (stored in the package), a fixed number, or none (0.5)")
    # -- tables: the neural combiner (mlp) ---------------------------------------
    hidden: list[int] = Field([256, 128], description="mlp: sizes of the shared head's layers")
    text_encoder: Literal["transformer", "bag"] = Field(
        "transformer", description="text columns without a pretrained tokenizer: transformer "
        "(trained from scratch) or bag (fastText-style means of token and bigram embeddings; "
        "much cheaper per epoch on CPUs)")
    text_dim: int = Field(128, ge=8, description="text columns: embedding / transformer width")
    text_layers: int = Field(2, ge=1, description="text columns: transformer layers")
    lora: bool = Field(False, description="pretrained text model: fine-tune LoRA adapters "
                       "(peft) instead of all weights")
    lora_rank: int = Field(8, ge=1, description="LoRA rank")
    image_encoder: str = Field("seed_cnn", description="image-path columns: seed_cnn or "
                               "timm:<backbone>")

    @field_validator("name")
    @classmethod
    def _known(cls, v: str) -> str:
        known = [*(n for n in NETWORKS if n != "timm"), *OTHER_FAMILIES]
        if v in known or is_network(v):
            return v
        hint = difflib.get_close_matches(v, known, n=1)
        raise ValueError(
            f"unknown model family; available: {', '.join(sorted(known))}, or "
            f"timm:<name>{f'. Did you mean {hint[0]!r}?' if hint else ''}"
        )


def register_network(name: str) -> Callable:
    def deco(fn: Callable[..., torch.nn.Module]) -> Callable[..., torch.nn.Module]:
        NETWORKS[name] = fn
        return fn

    return deco


def list_families() -> list[str]:
    return sorted(n for n in NETWORKS if n != "timm") + [p + "<name>" for p in PREFIXED]


def create_model(
    spec: ModelConfig | dict[str, Any],
    schema: Schema,
    task: Task,
    preprocessing: dict[str, Any],
    *,
    for_loading: bool = False,
) -> torch.nn.Module:
    """Build the model for ``schema`` and ``task`` with the fitted ``preprocessing`` state.

    ``for_loading`` skips pretrained weight loading (the package's weights follow).
    The returned model carries ``package_spec`` (the spec to save in a package) and
    ``normalization()`` (the mean/std to save in its preprocessing state).
    """
    if isinstance(spec, dict):
        spec = ModelConfig.model_validate(spec)
    image_cols = [c for c in schema.inputs if c.type == "image"]
    if len(image_cols) != 1 or len(schema.inputs) != 1:
        raise ModelError(
            f"model '{spec.name}' takes exactly one image column; the data has "
            f"{[c.name + ':' + c.type for c in schema.inputs]}. Fix: for tables use "
            "model.name: auto, lightgbm, linear or mlp."
        )
    h, w, c = image_cols[0].shape
    family = "timm" if spec.name.startswith("timm:") else spec.name
    build = NETWORKS[family]
    net, mean, std, name = build(spec=spec, height=h, width=w, channels=c,
                                 num_outputs=task.num_outputs, for_loading=for_loading)
    state = preprocessing[image_cols[0].name]
    # a package's normalization is part of its fitted state: package.json wins
    mean, std = state.get("mean", mean), state.get("std", std)
    model = ImageModel(net, rescale=state["rescale"], mean=mean, std=std)
    # what package.json records: the bare architecture, loadable offline anywhere
    model.package_spec = {"name": name, "pretrained": False, "dropout": spec.dropout}
    return model


class ImageModel(torch.nn.Module):
    """Raw pixels N x H x W x C -> rescale/normalize -> backbone (channels-last NCHW)."""

    def __init__(
        self, net: torch.nn.Module, rescale: float, mean: list[float], std: list[float]
    ) -> None:
        super().__init__()
        self.net = net
        self.rescale = rescale
        self.channels_last = False  # set by the trainer where it measures faster (GPUs)
        self.register_buffer("mean", torch.tensor(mean).view(1, -1, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std).view(1, -1, 1, 1), persistent=False)

    def normalization(self) -> dict[str, list[float]]:
        return {"mean": self.mean.flatten().tolist(), "std": self.std.flatten().tolist()}

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        # permute keeps NHWC memory order (a channels-last NCHW view, free); CPUs without
        # AVX-512 run contiguous NCHW faster, so the layout is chosen, not inherited
        fmt = torch.channels_last if self.channels_last else torch.contiguous_format
        x = (image.permute(0, 3, 1, 2).float() * self.rescale).contiguous(memory_format=fmt)
        x = (x - self.mean) / self.std
        return self.net(x)


# families register themselves on import
from launchml.models import seed_cnn, timm_family  # noqa: E402,F401

__all__ = ["NETWORKS", "ImageModel", "ModelConfig", "create_model", "is_network",
           "list_families", "register_network"]
