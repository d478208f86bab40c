"""The layer replacement DP-SGD makes, without Opacus, so a package trained with
``privacy.dp`` is rebuilt for serving exactly as it was trained.

Opacus' ``ModuleValidator.fix`` replaces every BatchNorm (it mixes the rows of a
batch, which per-sample gradients cannot allow) with
``GroupNorm(gcd(32, channels), channels, affine=bn.affine)``; this is that mapping.
"""

from __future__ import annotations

import math
from typing import Any


def batchnorm_to_groupnorm(model: Any) -> Any:
    """``model`` with each BatchNorm replaced by Opacus' GroupNorm, in place."""
    import torch.nn as nn

    for name, child in model.named_children():
        if isinstance(child, nn.modules.batchnorm._BatchNorm):
            setattr(model, name, nn.GroupNorm(math.gcd(32, child.num_features),
                                              child.num_features, affine=child.affine))
        else:
            batchnorm_to_groupnorm(child)
    return model
