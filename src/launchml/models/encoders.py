"""One encoder per table column that is not a plain number: text, molecule,
protein and image-path columns -> an N x out_dim float embedding.

    enc = build_encoder("review", state, spec)    # state: the column's fitted preprocessing
    z = enc(ids)                                   # N x enc.out_dim
    enc.finalize()                                 # before saving: LoRA merged into weights

text (scratch)     token embedding + learned positions + nn.TransformerEncoder, mean
                   over the non-pad tokens; out_dim = model.mlp.text_dim
text (pretrained)  a Hugging Face AutoModel (optionally LoRA adapters via peft), mean of
                   last_hidden_state over the attention mask; out_dim = its hidden size
molecule, protein  character embedding (64) + three Conv1d + max over valid positions;
                   out_dim = 128
image              a registered image family (model.mlp.image_encoder: seed_cnn or
                   timm:<name>) with 64 outputs inside ImageModel (raw NHWC pixels)

``for_loading=True`` builds the bare architecture a package's weights load into:
no download, and a pretrained text model from the config kept in the state
(LoRA adapters were merged by ``finalize`` before the weights were saved).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from launchml.errors import ModelError, missing_dependency
from launchml.models import NETWORKS, MLPConfig, NetworkSpec
from launchml.models.networks import ImageModel

CHAR_DIM, CHAR_OUT, IMAGE_OUT = 64, 128, 64
HEADS = 4


class Encoder(nn.Module):
    """Base: ``out_dim`` and a ``finalize()`` hook run once before the weights are saved."""

    out_dim: int

    def finalize(self) -> None:
        """Make the state_dict match the ``for_loading=True`` architecture (default: as is)."""


def _mean(hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean over the positions where ``mask`` (N x L bool) is true; 0 for none."""
    m = mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * m).sum(1) / m.sum(1).clamp(min=1.0)


class TextBag(Encoder):
    """fastText-style: the means of token and token-bigram embeddings (bigrams hashed).

    Much cheaper per epoch than attention on a CPU; ``model.mlp.text_encoder: bag``.
    """

    BUCKETS = 2 ** 15

    def __init__(self, vocab_size: int, pad_id: int, dim: int) -> None:
        super().__init__()
        self.pad_id, self.out_dim = pad_id, 2 * dim
        self.tokens = nn.Embedding(vocab_size, dim)
        self.bigrams = nn.Embedding(self.BUCKETS, dim)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        valid = ids != self.pad_id
        uni = _mean(self.tokens(ids), valid)
        pairs = (ids[:, :-1] * 1_000_003 + ids[:, 1:]) % self.BUCKETS
        bi = _mean(self.bigrams(pairs), valid[:, :-1] & valid[:, 1:])
        return torch.cat([uni, bi], dim=1)


class TextEncoder(Encoder):
    """A small transformer trained from scratch on the column's own tokenizer."""

    def __init__(self, vocab_size: int, max_length: int, pad_id: int, dim: int, layers: int,
                 dropout: float = 0.1) -> None:
        super().__init__()
        self.pad_id, self.out_dim = pad_id, dim
        self.tokens = nn.Embedding(vocab_size, dim, padding_idx=pad_id)
        self.positions = nn.Parameter(torch.randn(1, max_length, dim) * 0.02)
        layer = nn.TransformerEncoderLayer(dim, HEADS, dim_feedforward=2 * dim, dropout=dropout,
                                           batch_first=True, norm_first=True)
        self.encoder = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(dim)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        valid = ids != self.pad_id
        # position 0 always attends: an all-padding row would give NaN attention
        first = torch.arange(ids.shape[1], device=ids.device) == 0
        x = self.tokens(ids) + self.positions[:, : ids.shape[1]]
        x = self.encoder(x, src_key_padding_mask=~(valid | first))
        return _mean(self.norm(x), valid)


class PretrainedTextEncoder(Encoder):
    """A Hugging Face model (BERT-like); LoRA adapters train instead of its weights."""

    def __init__(self, model: nn.Module, pad_id: int, lora: bool) -> None:
        super().__init__()
        self.model, self.pad_id, self.lora = model, pad_id, lora
        config = model.config
        self.out_dim = int(getattr(config, "hidden_size", 0) or config.d_model)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        mask = ids != self.pad_id
        hidden = self.model(input_ids=ids, attention_mask=mask.long()).last_hidden_state
        return _mean(hidden, mask)

    def finalize(self) -> None:
        if self.lora:  # adapters folded into the base weights: plain architecture keys
            self.model = self.model.merge_and_unload()
            self.lora = False


class CharCNN(Encoder):
    """Character ids (0 = pad) -> embedding -> Conv1d x 3 -> max over valid positions."""

    def __init__(self, vocab_size: int) -> None:
        super().__init__()
        self.out_dim = CHAR_OUT
        self.chars = nn.Embedding(vocab_size, CHAR_DIM, padding_idx=0)
        self.convs = nn.Sequential(
            nn.Conv1d(CHAR_DIM, CHAR_OUT, 3, padding=1), nn.ReLU(),
            nn.Conv1d(CHAR_OUT, CHAR_OUT, 5, padding=2), nn.ReLU(),
            nn.Conv1d(CHAR_OUT, CHAR_OUT, 7, padding=3), nn.ReLU(),
        )

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        valid = (ids != 0).unsqueeze(1).float()  # N x 1 x L
        x = self.convs(self.chars(ids).transpose(1, 2))
        # after ReLU every value is >= 0, so zeroing padding leaves the max over valid
        # positions unchanged (and an empty sequence embeds as zeros)
        return (x * valid).amax(dim=2)


class ImageEncoder(ImageModel):
    """An image family with IMAGE_OUT outputs, taking raw N x H x W x C pixels."""

    def __init__(self, net: nn.Module, rescale: float, mean: list[float],
                 std: list[float]) -> None:
        super().__init__(net, rescale=rescale, mean=mean, std=std)
        self.out_dim = IMAGE_OUT

    def finalize(self) -> None:
        """Nothing to merge."""


def _hf(column: str, state: dict[str, Any], spec: MLPConfig, for_loading: bool) -> Encoder:
    try:
        from transformers import AutoConfig, AutoModel
    except ImportError as e:
        raise missing_dependency("transformers", "text", f"column '{column}': a pretrained "
                                 "text model") from e
    name = state["pretrained"]
    if not for_loading and not name:
        raise ModelError(f"column '{column}' (text): this package keeps its fine-tuned text "
                         "model, not the folder of the pretrained model it started from "
                         "(a package names nothing outside itself). Fix: train from the run "
                         "whose data.tokenizer names that folder.")
    if for_loading:
        config = dict(state["hf_config"])
        model = AutoModel.from_config(AutoConfig.for_model(**config))
    else:
        from launchml.models.timm_family import hub_cache_only, offline_reason

        # a hub name offline: the local cache or an error at once, not a minute of retries
        offline = None if Path(name).is_dir() else offline_reason()
        try:
            if offline:
                with hub_cache_only():
                    model = AutoModel.from_pretrained(name, local_files_only=True)
            else:
                model = AutoModel.from_pretrained(name)
        except (OSError, ValueError, ConnectionError) as e:
            why = (f"offline: {offline}; not in the local cache" if offline else
                   f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}")
            raise ModelError(
                f"column '{column}' (text): the model '{name}' could not be loaded "
                f"({why}). Fix: set "
                "data.tokenizer to a local folder holding the model (save_pretrained), or run "
                "with network access so it is downloaded once."
            ) from e
    lora = spec.lora and not for_loading
    if lora:
        try:
            from peft import LoraConfig, get_peft_model
        except ImportError as e:
            raise missing_dependency("peft", "text", "model.mlp.lora") from e

        r = spec.lora_rank
        model = get_peft_model(model, LoraConfig(r=r, lora_alpha=2 * r, lora_dropout=0.0,
                                                 target_modules="all-linear"))
    return PretrainedTextEncoder(model, state["pad_id"], lora)


def _image(column: str, state: dict[str, Any], spec: MLPConfig, for_loading: bool) -> Encoder:
    name = spec.image_encoder
    family = "timm" if name.startswith("timm:") else name
    if family not in NETWORKS or family == "timm" and name == "timm:":
        choices = ", ".join(sorted(f for f in NETWORKS if f != "timm"))
        raise ModelError(f"column '{column}' (image): model.mlp.image_encoder '{name}' is not an "
                         f"image family. Fix: use one of {choices}, or timm:<name> "
                         "(e.g. timm:resnet18).")
    pretrained = spec.image_pretrained if family == "timm" else False
    sub = NetworkSpec(name=name, pretrained=pretrained, dropout=spec.dropout)
    h, w = state["target_size"]
    net, mean, std, _ = NETWORKS[family](spec=sub, height=h, width=w,
                                         channels=state["channels"], num_outputs=IMAGE_OUT,
                                         for_loading=for_loading)
    if for_loading or not pretrained:  # the state's normalization; pretrained weights: theirs
        mean, std = state.get("mean", mean), state.get("std", std)
    return ImageEncoder(net, rescale=state["rescale"], mean=mean, std=std)


def build_encoder(column: str, state: dict[str, Any], spec: MLPConfig, *,
                  for_loading: bool = False) -> Encoder:
    """The encoder of one column from its fitted preprocessing ``state``.

    Image encoders built from pretrained timm weights normalize with those
    weights' mean/std: save ``enc.normalization()`` into the column's state.
    """
    ctype = state["type"]
    if ctype == "text":
        if state.get("pretrained") or state.get("hf_config"):  # a package: hf_config only
            return _hf(column, state, spec, for_loading)
        if spec.text_encoder == "bag":
            return TextBag(state["vocab_size"], state["pad_id"], spec.text_dim)
        if spec.text_dim % HEADS:
            raise ModelError(f"model.mlp.text_dim {spec.text_dim} is not a multiple of {HEADS} "
                             f"(the attention heads). Fix: e.g. model.mlp.text_dim: "
                             f"{spec.text_dim // HEADS * HEADS or HEADS * 2}.")
        return TextEncoder(state["vocab_size"], state["max_length"], state["pad_id"],
                           spec.text_dim, spec.text_layers)
    if ctype in ("molecule", "protein"):
        return CharCNN(state["vocab_size"])
    if ctype == "image":
        return _image(column, state, spec, for_loading)
    raise ModelError(f"column '{column}': type '{ctype}' has no encoder (text, molecule, "
                     "protein and image columns do).")


__all__ = ["CharCNN", "Encoder", "ImageEncoder", "PretrainedTextEncoder", "TextBag",
           "TextEncoder", "build_encoder"]
