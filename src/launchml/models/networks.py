"""The image-network model: ``create_model`` and ``ImageModel`` (torch).

Split from ``launchml.models`` so that ``ModelConfig`` and the network registry
load without torch; ``launchml.models.create_model`` / ``.ImageModel`` import this
module on first use, and importing it registers the built-in networks.
"""

from __future__ import annotations

from typing import Any

import torch

from launchml.data.schema import Schema
from launchml.errors import ModelError
from launchml.models import NETWORKS, NetworkSpec
from launchml.tasks import Task


def create_model(
    spec: NetworkSpec | dict[str, Any],
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
        spec = NetworkSpec.model_validate(spec)
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
        self.channels_last = False  # set by the trainer where it measures faster (GPUs, AVX-512)
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


# the built-in networks register themselves on import
from launchml.models import seed_cnn, timm_family  # noqa: E402,F401

__all__ = ["ImageModel", "create_model"]
