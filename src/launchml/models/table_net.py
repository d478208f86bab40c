"""The neural combiner for tables (family ``mlp``): one encoder per input column
feeding a shared head.

Numbers, booleans and date parts go in as one float vector, each category
through its own embedding, and each text / molecule / protein / image-path
column through its encoder (``models/encoders.py``: a small transformer or a
Hugging Face model, a character CNN, the foundation's image networks). The
concatenation feeds an MLP head. With numbers and categories only, this is the
classic "MLP with category embeddings".

The ``plan`` (which prepared arrays feed which part) is computed once from the
training arrays and the fitted preprocessing, and stored in the package, so the
same model is rebuilt at serving time. ``pack`` turns the prepared arrays into
the model's named inputs (``numbers``, ``categories``, ``col0``, ``col1``...),
which are also the ONNX input names.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from launchml.models.plan import ENCODED, make_plan, pack  # noqa: F401  (re-exported)


class TableNet(nn.Module):
    """forward(numbers=N x F float, categories=N x C int64, col0=..., ...) -> logits."""

    def __init__(self, plan: dict[str, Any], states: dict[str, dict[str, Any]], spec: Any,
                 num_outputs: int, *, for_loading: bool = False) -> None:
        super().__init__()
        from launchml.models.encoders import build_encoder

        self.plan = plan
        self.embeddings = nn.ModuleList(
            nn.Embedding(card, dim) for _, card, dim in plan["categories"])
        self.encoders = nn.ModuleDict({
            key: build_encoder(col, states[col], spec, for_loading=for_loading)
            for key, col in plan["encoders"]})
        width = (len(plan["numbers"]) + sum(dim for _, _, dim in plan["categories"])
                 + sum(e.out_dim for e in self.encoders.values()))
        layers: list[nn.Module] = []
        dropout = spec.dropout  # as configured: 0 means none (tables default to 0.1)
        for h in spec.hidden:
            layers += [nn.Linear(width, h), nn.ReLU(), nn.Dropout(dropout)]
            width = h
        layers.append(nn.Linear(width, num_outputs))
        self.head = nn.Sequential(*layers)

    def forward(self, **inputs: torch.Tensor) -> torch.Tensor:
        parts = []
        if "numbers" in inputs:
            parts.append(inputs["numbers"].float())
        if "categories" in inputs:
            codes = inputs["categories"].long()
            parts += [emb(codes[:, i]) for i, emb in enumerate(self.embeddings)]
        for key, encoder in self.encoders.items():
            parts.append(encoder(inputs[key]))
        return self.head(torch.cat(parts, dim=1))

    def finalize(self) -> TableNet:
        """Before saving: merge LoRA adapters etc. so the weights have the plain layout."""
        for encoder in self.encoders.values():
            encoder.finalize()
        return self
