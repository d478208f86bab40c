"""Small image networks for DP-SGD: ``model.name: dp_linear`` and ``dp_cnn``.

DP-SGD adds Gaussian noise of the same norm to every weight's gradient, so the noise a
model takes in grows with its weight count while the clipped signal does not: on a few
thousand images the article's CNN (160 k weights) drowns. The network here follows the
DP literature: few weights (Tramer & Boneh 2021), tanh activations, whose bounded outputs
keep the clipped gradients informative (Papernot et al. 2020), and no BatchNorm (it mixes
the rows of a batch).

``dp_linear``: Flatten -> Dense(output), a linear classifier on the pixels (650 weights
for 8x8 grey images). The fewest weights, so the least noise: on a small data set it is
the strongest under DP-SGD (Tramer & Boneh 2021: linear models beat end-to-end CNNs at
small privacy budgets); scikit-learn's digits at 8x8, epsilon 8: 0.95-0.96 (no DP 0.97).

``dp_cnn``: Conv(16, 3x3, same) -> tanh -> MaxPool(2) -> Conv(32, 3x3, same) -> tanh ->
MaxPool(2) -> AdaptiveAvgPool(at most 4x4) -> Flatten -> Dense(output). About 6 k
weights for 8x8 grey images, at most 10 k for any image size (images of 4x4 and up);
digits at 8x8, epsilon 8: 0.89-0.93 (no DP 0.99).

Both take images at any size; their weights count grows with the pixels only for
``dp_linear`` (keep data.target_size small, e.g. the data's own size).
"""

from __future__ import annotations

from typing import Any

from launchml.errors import ModelError
from launchml.models import NetworkSpec, register_network

MIN_SIDE = 4  # two 2x2 poolings leave a 1x1 map
WIDTHS = (16, 32)
MAX_MAP = 4  # the head sees at most a 4x4 map: its weights do not grow with the image


def dp_cnn(channels: int, height: int, width: int, num_outputs: int,
           dropout: float = 0.0) -> Any:
    """The network (an ``nn.Sequential``) for images of ``height`` x ``width`` pixels."""
    from torch import nn

    if min(height, width) < MIN_SIDE:
        raise ModelError(f"dp_cnn needs images of at least {MIN_SIDE}x{MIN_SIDE}; "
                         f"data.target_size is [{height}, {width}]. Fix: a larger "
                         "data.target_size, e.g. [8, 8].")
    a, b = WIDTHS
    fh, fw = min(height // 4, MAX_MAP), min(width // 4, MAX_MAP)
    return nn.Sequential(
        nn.Conv2d(channels, a, 3, padding=1), nn.Tanh(), nn.MaxPool2d(2),
        nn.Conv2d(a, b, 3, padding=1), nn.Tanh(), nn.MaxPool2d(2),
        nn.AdaptiveAvgPool2d((fh, fw)), nn.Flatten(), nn.Dropout(dropout),
        nn.Linear(b * fh * fw, num_outputs),
    )


def dp_linear(channels: int, height: int, width: int, num_outputs: int,
              dropout: float = 0.0) -> Any:
    """A linear classifier on the ``channels`` x ``height`` x ``width`` pixels."""
    from torch import nn

    return nn.Sequential(nn.Flatten(), nn.Dropout(dropout),
                         nn.Linear(channels * height * width, num_outputs))


@register_network("dp_linear")
def build_dp_linear(*, spec: NetworkSpec, height: int, width: int, channels: int,
                    num_outputs: int, for_loading: bool) -> tuple[Any, list, list, str]:
    if spec.pretrained:
        raise ModelError("dp_linear has no pretrained weights; remove "
                         "model.network.pretrained.")
    net = dp_linear(channels, height, width, num_outputs, spec.dropout)
    return net, [0.0] * channels, [1.0] * channels, "dp_linear"


@register_network("dp_cnn")
def build_dp_cnn(*, spec: NetworkSpec, height: int, width: int, channels: int,
                 num_outputs: int, for_loading: bool) -> tuple[Any, list, list, str]:
    if spec.pretrained:
        raise ModelError("dp_cnn has no pretrained weights; remove model.network.pretrained.")
    net = dp_cnn(channels, height, width, num_outputs, spec.dropout)
    return net, [0.0] * channels, [1.0] * channels, "dp_cnn"
