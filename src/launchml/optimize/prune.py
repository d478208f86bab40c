"""Structured channel pruning (torch-pruning) that physically shrinks a network.

``prune_network`` removes ``ratio`` of the output channels of every convolution and
of the hidden units of every dense layer, ranked by the L2 norm of their weights,
following the dependency graph so the layers that read them shrink too: for the
seed CNN the last convolution's channels and the large Dense(512) layer after the
flatten both shrink. The layer that produces the outputs, embeddings and
attention blocks are kept whole. The pruned module is a plain ``nn.Module`` with
smaller layers: fewer parameters and FLOPs, and it exports to ONNX as any other.
It is then fine-tuned briefly by the normal trainer (``optimize.prune.finetune_epochs``).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from launchml.errors import ModelError

KEPT_WHOLE = ("Embedding", "MultiheadAttention", "LayerNorm")


def output_layer(net: Any) -> Any:
    """The last dense (or 1x1 conv) layer in module order: the one producing the outputs."""
    import torch

    layers = [m for m in net.modules() if isinstance(m, torch.nn.Linear | torch.nn.Conv2d)]
    if not layers:
        raise ModelError(f"{type(net).__name__} has no convolution or dense layer to prune")
    return layers[-1]


def prune_network(net: Any, example: dict[str, np.ndarray], ratio: float) -> Any:
    """Prune ``net`` in place to ``1 - ratio`` of its channels; returns it.

    A layer torch-pruning cannot follow raises ``ModelError`` naming it."""
    import torch
    import torch_pruning as tp

    net = net.eval()
    one = {k: torch.from_numpy(np.array(v[:2])) for k, v in example.items()}  # a copy
    ignored = [output_layer(net)]
    ignored += [m for m in net.modules() if type(m).__name__ in KEPT_WHOLE]
    # modules whose layers feed attention (a transformer encoder) are kept whole too
    ignored += [m for m in net.modules() if any(type(c).__name__ == "MultiheadAttention"
                                               for c in m.children())]
    prunable = [m for m in net.modules()
                if isinstance(m, torch.nn.Linear | torch.nn.Conv2d) and m not in ignored]
    if not prunable:
        raise ModelError(f"nothing to prune in {type(net).__name__}: its only dense/conv layer "
                         f"is the output layer ({_name(net, ignored[0])})")
    before = sum(p.numel() for p in net.parameters())
    try:
        pruner = tp.pruner.MetaPruner(
            net, one, importance=tp.importance.MagnitudeImportance(p=2), pruning_ratio=ratio,
            ignored_layers=ignored, forward_fn=lambda m, x: m(**x))
        pruner.step()
    except Exception as e:  # noqa: BLE001 - name the layer the dependency graph stopped at
        raise ModelError(f"structured pruning failed at {_blocking_layer(net, e)}: "
                         f"{str(e).splitlines()[0] if str(e) else type(e).__name__}") from e
    after = sum(p.numel() for p in net.parameters())
    if after >= before:
        raise ModelError(f"pruning removed nothing from {type(net).__name__}: every layer "
                         "with channels to remove is an output, embedding or attention layer")
    return net


def _name(net: Any, module: Any) -> str:
    return next((f"layer '{n}' ({type(m).__name__})" for n, m in net.named_modules()
                 if m is module), type(module).__name__)


def _blocking_layer(net: Any, err: Exception) -> str:
    """The layer an error from torch-pruning names, or the first unsupported module type."""
    text = str(err)
    for name, module in net.named_modules():
        if name and (f"'{name}'" in text or type(module).__name__ in text):
            return _name(net, module)
    return f"a layer of {type(net).__name__} ({type(err).__name__})"
