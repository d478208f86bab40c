"""Model families, one file per family, built by one factory.

``create_model(spec, schema, task)`` returns an ``nn.Module`` whose forward
takes one keyword tensor per input column (``image``: N x H x W x C raw pixel
values, float or uint8) and returns raw outputs (logits). Families register
themselves with ``@register_family``; ``timm:<name>`` selects any timm backbone.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field, field_validator, model_validator

from launchml.configbase import StrictModel
from launchml.errors import ModelError

if TYPE_CHECKING:
    import torch

    from launchml.models.networks import ImageModel, create_model

# the built-in image networks and the module that registers each; their names are known
# (config validation) before torch is imported, their builders load on first use
BUILTIN_NETWORKS = {"seed_cnn": "launchml.models.seed_cnn",
                    "seed_cnn_small": "launchml.models.seed_cnn",  # optimize.distill's student
                    "dp_linear": "launchml.privacy.networks",  # few weights: for DP-SGD
                    "dp_cnn": "launchml.privacy.networks",  # small, tanh: for DP-SGD
                    "timm": "launchml.models.timm_family"}


def _lazy_network(name: str) -> Callable[..., torch.nn.Module]:
    def build(*args: Any, **kwargs: Any) -> torch.nn.Module:
        import importlib

        importlib.import_module(BUILTIN_NETWORKS[name])  # registers the real builder
        if NETWORKS[name] is build:
            raise ModelError(f"{BUILTIN_NETWORKS[name]} did not register network '{name}'")
        return NETWORKS[name](*args, **kwargs)

    return build


# image networks (seed_cnn, timm): the backbones behind the image families and the
# image-column encoder. The model families themselves are ``models.families.FAMILIES``.
NETWORKS: dict[str, Callable[..., torch.nn.Module]] = {n: _lazy_network(n)
                                                        for n in BUILTIN_NETWORKS}
PREFIXED = ("timm:",)
# families that are not image networks, and 'auto'
OTHER_FAMILIES = ("auto", "lightgbm", "linear", "mlp", "lightgbm_extra")


def is_network(name: str) -> bool:
    """True for an image network family name: seed_cnn or timm:<architecture>."""
    return (name in NETWORKS and name != "timm") or any(
        name.startswith(p) and len(name) > len(p) for p in PREFIXED)


class NetworkSpec(StrictModel):
    """An image network as built and packaged: seed_cnn or timm:<architecture>."""

    name: str
    pretrained: bool | str = False
    dropout: float = Field(0.0, ge=0.0, lt=1.0)


class NetworkConfig(StrictModel):
    """``model.network:`` the image networks' settings (seed_cnn, timm:<name>)."""

    pretrained: bool | str = Field(
        False, description="timm only: true (download), a local weights file, or "
        "hf-hub:<repo>")
    dropout: float = Field(0.0, ge=0.0, lt=1.0, description="before the output layer; 0: "
                           "none, as in the article's CNN")


class MLPConfig(StrictModel):
    """``model.mlp:`` the neural combiner's settings (one encoder per column + a head)."""

    hidden: list[int] = Field([256, 128], description="sizes of the shared head's layers")
    dropout: float = Field(0.1, ge=0.0, lt=1.0, description="between the head's layers; "
                           "0: none")
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
    image_pretrained: bool | str = Field(
        False, description="image-path columns with a timm encoder: its pretrained weights "
        "(as model.network.pretrained)")


# keys of the flat model section before per-family sections -> where each lives now
# (a flat 'dropout' or 'pretrained' configured both the image networks and the combiner)
LEGACY_KEYS: dict[str, list[tuple[str, str]]] = {
    **{k: [("mlp", k)] for k in ("hidden", "text_encoder", "text_dim", "text_layers", "lora",
                                  "lora_rank", "image_encoder")},
    "dropout": [("mlp", "dropout"), ("network", "dropout")],
    "pretrained": [("network", "pretrained"), ("mlp", "image_pretrained")],
}


class ModelConfig(StrictModel):
    """``model:`` which families to train, how to choose, and each family's settings."""

    name: str = Field("auto", description="auto (image folders: seed_cnn, and timm:<name> "
                      "listed in families; tables: the best of lightgbm, linear and mlp on "
                      "validation, maybe an ensemble), seed_cnn, timm:<backbone> e.g. "
                      "timm:resnet18, lightgbm, linear, or mlp (the neural combiner: one "
                      "encoder per column feeding a shared head)")
    families: list[str] | None = Field(
        None, description="auto: the families to try; null: every family that fits the data")
    time_limit: float | None = Field(
        None, gt=0, description="auto: seconds for all families together, and for the "
        "prepare stage when it runs in the same call (training gets what prepare left); "
        "null: no limit")
    ensemble: bool = Field(True, description="auto: weighted ensemble of the best families "
                           "when it beats the best one on validation")
    cv_folds: int | None = Field(
        None, ge=0, le=20, description="auto: rank the families, weigh the ensemble and tune "
        "the threshold on k-fold out-of-fold predictions over train + validation, then refit "
        "on all of them (AutoGluon's bagging + refit_full); 0: on the validation split; null: "
        "5 folds for tables of at most 2,000 train + validation rows whose columns are all "
        "numbers, categories, booleans or dates (a small validation split picks by noise), "
        "the validation split otherwise")
    refit: bool | None = Field(None, description="refit the chosen families on train + "
                               "validation with the settings early stopping found; null: true "
                               "for tables, false for image folders (filled in the saved config)")
    class_weight: Literal["none", "balanced"] = Field(
        "none", description="balanced: weight classes by inverse frequency (imbalanced data)")
    threshold: Literal["accuracy", "f1", "balanced_accuracy", "none"] | float = Field(
        "accuracy", description="binary: decision threshold tuned on validation for this "
        "metric (stored in the package), a fixed number, or none (0.5)")
    network: NetworkConfig = Field(default_factory=NetworkConfig,
                                   description="the image networks (seed_cnn, timm:<name>)")
    mlp: MLPConfig = Field(default_factory=MLPConfig, description="the neural combiner")

    @model_validator(mode="before")
    @classmethod
    def _sections(cls, data: Any) -> Any:
        """Flat keys (the layout before per-family sections) move into their section."""
        if not isinstance(data, dict):
            return data
        data = dict(data)
        mlp = dict(data.get("mlp") or {})
        network = dict(data.get("network") or {})
        sections = {"mlp": mlp, "network": network}
        for flat, targets in LEGACY_KEYS.items():
            if flat not in data:
                continue
            value = data.pop(flat)
            for section, key in targets:
                if key in sections[section] and sections[section][key] != value:
                    raise ValueError(
                        f"model.{flat} is the old spelling of model.{section}.{key}, and both "
                        f"are set, to {value!r} and {sections[section][key]!r}. Fix: keep "
                        f"model.{section}.{key} only")
                sections[section][key] = value
        if mlp:
            data["mlp"] = mlp
        if network:
            data["network"] = network
        return data

    @field_validator("cv_folds")
    @classmethod
    def _folds(cls, v: int | None) -> int | None:
        if v == 1:
            raise ValueError("1 fold leaves nothing to validate on. Fix: 0 (the validation "
                             "split), 2 to 20, or null")
        return v

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


register_family = register_network  # the name before 0.2 (deprecated; image networks only)


def list_families() -> list[str]:
    return sorted(n for n in NETWORKS if n != "timm") + [p + "<name>" for p in PREFIXED]


# ``create_model`` and ``ImageModel`` (torch) live in ``models.networks``, imported on
# first use; importing it registers the built-in networks (seed_cnn, timm)
_LAZY = {"ImageModel": "launchml.models.networks", "create_model": "launchml.models.networks"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        value = globals()[name] = getattr(importlib.import_module(_LAZY[name]), name)
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["NETWORKS", "ImageModel", "MLPConfig", "ModelConfig", "NetworkConfig", "NetworkSpec",
           "create_model", "is_network", "list_families", "register_network"]
