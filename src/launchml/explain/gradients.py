"""Gradient explanations with Captum, of the served ensemble's output.

The members served by PyTorch are combined as ``models.families.combine`` does (in
probability space), written in torch so that gradients flow through the whole
ensemble: what is explained is the package's output, not one member's.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import numpy as np

from launchml.explain.core import Explanation, output_name, targets

if TYPE_CHECKING:
    import torch

    from launchml.deploy.predictor import Predictor

IG_STEPS = 32  # Gauss-Legendre points: completeness within ~1% on the built-in networks
IG_BATCH = 64  # interpolated inputs per forward pass


def conv_layers(net: Any) -> list[Any]:
    from torch import nn

    return [m for m in net.modules() if isinstance(m, nn.Conv2d)]


CAM_SIDE = 7  # Grad-CAM's layer: the last convolution whose map is at least this wide


def _activations() -> tuple[type, ...]:
    from torch import nn

    return (nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.GELU, nn.SiLU, nn.ELU, nn.Hardswish)


def cam_layer(net: Any, x: torch.Tensor) -> Any:
    """The last Conv2d whose output map is at least ``CAM_SIDE`` on its shorter side (the
    last of all on large images; an earlier one where the last map is 1x1, as for
    seed_cnn on 24x24 digits), else the first."""
    import torch
    from torch import nn

    layers = conv_layers(net)
    sides: dict[int, int] = {}
    hooks = [m.register_forward_hook(
        lambda mod, _, out: sides.__setitem__(id(mod), min(out.shape[-2:]))) for m in layers]
    try:
        with torch.no_grad():
            net(image=x)
    finally:
        for h in hooks:
            h.remove()
    wide = [m for m in layers if sides.get(id(m), 0) >= CAM_SIDE]
    conv = wide[-1] if wide else layers[0]
    # Grad-CAM weighs the rectified feature maps: the activation that follows the
    # convolution (after its pooling / normalization), where there is one before the next
    order = list(net.modules())
    for m in order[order.index(conv) + 1:]:
        if isinstance(m, nn.Conv2d):
            break
        if isinstance(m, _activations()):
            if getattr(m, "inplace", False):
                m.inplace = False  # the same values; the hook needs its own output tensor
            return m
    return conv


def torch_combine(task_name: str, raws: list[torch.Tensor], weights: list[float]
                  ) -> torch.Tensor:
    """``models.families.combine`` in torch (differentiable)."""
    import torch

    if len(raws) == 1:
        return raws[0]
    w = [wi / sum(weights) for wi in weights]
    if task_name == "regression":
        return sum(wi * r for wi, r in zip(w, raws, strict=True))
    if task_name == "multiclass":
        p = sum(wi * torch.softmax(r, dim=1) for wi, r in zip(w, raws, strict=True))
        return torch.log(p.clamp_min(1e-12))
    p = sum(wi * torch.sigmoid(r) for wi, r in zip(w, raws, strict=True))
    p = p.clamp(1e-12, 1 - 1e-12)
    return torch.log(p) - torch.log1p(-p)


@contextmanager
def frozen(members: list[Any]) -> Iterator[None]:
    """Gradients for the inputs only: the weights' gradients are not computed (a text
    encoder's bigram table alone is 32,768 rows), and nothing is left behind."""
    params = [p for m in members for p in m.net.parameters() if p.requires_grad]
    for p in params:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p in params:
            p.requires_grad_(True)


def member_key(member: Any, column: str) -> str:
    """The name under which a torch member takes ``column`` (``image``, ``col0``...)."""
    plan = getattr(member, "plan", None)
    if plan is not None:
        return next(k for k, c in plan["encoders"] if c == column)
    return "image"


def served_forward(predictor: Predictor, members: list[Any], arrays: dict[str, np.ndarray],
                   column: str) -> tuple[Any, tuple[Any, ...]]:
    """(forward(x, *others) -> raw outputs, others): the ensemble with ``column``'s input
    replaced by ``x``; ``others`` are the members' other inputs as tensors."""
    import torch

    weights = [m["weight"] for m in predictor.package.meta["model"]["members"]]
    layout, others = [], []
    for m in members:
        feed = m.inputs(arrays)
        key = member_key(m, column)
        names = [k for k in feed if k != key]
        layout.append((m, key, names))
        others += [torch.from_numpy(np.array(feed[k])) for k in names]

    def forward(x: torch.Tensor, *rest: torch.Tensor) -> torch.Tensor:
        raws, i = [], 0
        for m, key, names in layout:
            feed = {key: x, **dict(zip(names, rest[i:i + len(names)], strict=True))}
            i += len(names)
            raws.append(m.net(**feed).float())
        return torch_combine(predictor.task.name, raws, weights)

    return forward, tuple(others)


def explain_images(predictor: Predictor, arrays: dict[str, np.ndarray], names: list[Any],
                   method: str, target: str | None) -> list[Explanation]:
    """Integrated gradients (baseline: a black image), Grad-CAM or HiResCAM (at the
    activations after a late convolution of each network, summed), one heat map per image.

    HiResCAM (Draelos & Carin, 2020) multiplies gradient and activation per position
    instead of averaging the gradient over the map first: where Grad-CAM's averaged
    gradients cancel (a network that answers through suppressed features gives an
    all-zero Grad-CAM map), it still shows what the output depends on."""
    import torch
    from captum.attr import (
        IntegratedGradients,
        LayerAttribution,
        LayerGradCam,
        LayerGradientXActivation,
    )

    from launchml.explain.core import torch_members

    column = predictor.image_column
    members = torch_members(predictor)
    pixels = arrays[column]
    raw = predictor.logits(arrays)
    t = targets(predictor, raw, target)
    preds = predictor.task.decode(raw, predictor.package.threshold)
    forward, others = served_forward(predictor, members, arrays, column)
    x = torch.from_numpy(np.asarray(pixels, dtype=np.float32))
    start = time.perf_counter()
    with torch.enable_grad(), frozen(members):
        if method == "integrated_gradients":
            attr, delta = IntegratedGradients(forward).attribute(
                x, baselines=torch.zeros_like(x), target=[int(i) for i in t],
                additional_forward_args=others, n_steps=IG_STEPS, internal_batch_size=IG_BATCH,
                return_convergence_delta=True)
            maps = attr.sum(-1).detach().numpy()  # N x H x W (summed over channels)
            base = forward(torch.zeros_like(x[:1]), *[o[:1] for o in others]).detach()
            base_values = [float(base[0, int(i)]) for i in t]
            baseline = "a black image (all pixels 0)"
            evals, deltas = IG_STEPS, delta.detach().numpy()
        else:
            h, w = x.shape[1:3]
            maps = np.zeros(x.shape[:3])
            for m in members:
                layer = cam_layer(m.net, x[:1])
                if method == "grad_cam":
                    cam = LayerGradCam(forward, layer).attribute(
                        x, target=[int(i) for i in t], additional_forward_args=others,
                        relu_attributions=True)
                else:  # HiResCAM: gradient x activation per position, summed over channels
                    cam = LayerGradientXActivation(forward, layer).attribute(
                        x, target=[int(i) for i in t], additional_forward_args=others)
                    cam = cam.sum(1, keepdim=True).clamp_min(0)
                maps += LayerAttribution.interpolate(cam, (h, w), "bilinear")[:, 0] \
                    .detach().numpy()
            base_values = [float("nan")] * len(t)
            baseline = ("none (the output's gradients at the activations of the last "
                        f"convolution with a map of at least {CAM_SIDE}x{CAM_SIDE})")
            evals, deltas = 1, None
    each = (time.perf_counter() - start) / max(1, len(t))
    out = []
    for i in range(len(t)):
        cost = {"seconds": each, "evaluations": evals, "batch": len(t)}
        if deltas is not None:
            cost["completeness_error"] = float(deltas[i])
        out.append(Explanation(
            input=names[i], prediction=preds[i], output=output_name(predictor, int(t[i])),
            method=method, baseline=baseline, value=float(raw[i, t[i]]),
            base_value=base_values[i], heatmap=maps[i], image=np.asarray(pixels[i]),
            cost=cost))
    return out


def layer_ig_tokens(predictor: Predictor, members: list[Any], arrays: dict[str, np.ndarray],
                    column: str, t: np.ndarray, pad: int) -> tuple[np.ndarray, float]:
    """N x L attributions of ``column``'s tokens: layer integrated gradients on the
    column encoder's embedding layers (bigram embeddings split over their two tokens);
    baseline: the padding token's embedding at every position. Returns (attr, seconds)."""
    import torch
    from captum.attr import LayerIntegratedGradients
    from torch import nn

    forward, others = served_forward(predictor, members, arrays, column)
    layers = []
    for m in members:
        encoder = m.net.encoders[member_key(m, column)]
        layers += [e for e in encoder.modules() if isinstance(e, nn.Embedding)]
    ids = torch.from_numpy(np.asarray(arrays[column], dtype=np.int64))
    start = time.perf_counter()
    with torch.enable_grad(), frozen(members), warnings.catch_warnings():
        # several layers: a text encoder's token and bigram tables, neither computed from
        # the other's output (what Captum's warning asks to make sure of)
        warnings.filterwarnings("ignore", message="Multiple layers provided")
        attrs = LayerIntegratedGradients(forward, layers).attribute(
            ids, baselines=torch.full_like(ids, pad), target=[int(i) for i in t],
            additional_forward_args=others, n_steps=IG_STEPS, internal_batch_size=IG_BATCH)
    if not isinstance(attrs, list):
        attrs = [attrs]
    n, length = ids.shape
    total = np.zeros((n, length))
    for a in attrs:
        a = a.detach().float().numpy()
        a = a.sum(-1) if a.ndim == 3 else a
        if a.shape[1] == length:
            total += a
        elif a.shape[1] == length - 1:  # pairs of neighbours (bigrams): half to each
            total[:, :-1] += a / 2
            total[:, 1:] += a / 2
    return total, time.perf_counter() - start
