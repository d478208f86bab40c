"""Any timm backbone: ``model.name: timm:<architecture>``.

``model.pretrained`` is ``false`` (random init), ``true`` (timm's default
weights from the Hugging Face Hub), a hub name (``timm/resnet18.a1_in1k`` or
``hf-hub:timm/resnet18.a1_in1k``), or a local weights file (.safetensors /
.pth / .bin). Offline, a missing download is a
``ModelError`` that says how to use a local file instead. When pretrained
weights are used, the model normalizes inputs with their mean/std.
"""

from __future__ import annotations

import difflib
from pathlib import Path

from torch import nn

from launchml.errors import MissingDependencyError, ModelError
from launchml.models import ModelConfig, register_family


def _timm():
    try:
        import timm
    except ImportError as e:  # pragma: no cover - timm is a core dependency
        raise MissingDependencyError("timm is not installed. Fix: pip install timm") from e
    return timm


WEIGHT_SUFFIXES = (".safetensors", ".pth", ".pt", ".bin", ".ckpt")


def _is_hub_name(value: str) -> bool:
    """'hf-hub:org/repo' or 'org/repo' that is not a local path or a weights file name."""
    if value.startswith("hf-hub:"):
        return True
    p = Path(value)
    return (value.count("/") == 1 and not p.exists() and not value.startswith((".", "/", "~"))
            and p.suffix not in WEIGHT_SUFFIXES)


@register_family("timm")
def build_timm(*, spec: ModelConfig, height: int, width: int, channels: int,
               num_outputs: int, for_loading: bool) -> tuple[nn.Module, list, list, str]:
    timm = _timm()
    arch = spec.name.removeprefix("timm:")
    pretrained = False if for_loading else spec.pretrained
    kwargs: dict = {"num_classes": num_outputs, "in_chans": channels, "drop_rate": spec.dropout}
    if isinstance(pretrained, str) and _is_hub_name(pretrained):
        arch, pretrained = "hf-hub:" + pretrained.removeprefix("hf-hub:"), True
    elif isinstance(pretrained, str):
        path = Path(pretrained)
        if not path.is_file():
            raise ModelError(
                f"model.pretrained: weights file '{pretrained}' does not exist. Fix: give the "
                "path of a .safetensors/.pth file, a hub name (timm/resnet18.a1_in1k), "
                "true for timm's default weights, or false."
            )
        kwargs["pretrained_cfg_overlay"] = {"file": str(path)}
        pretrained = True
    elif not timm.is_model(arch):
        hint = difflib.get_close_matches(arch, timm.list_models(), n=3)
        raise ModelError(
            f"model.name: timm has no architecture '{arch}'. "
            + (f"Did you mean: {', '.join('timm:' + h for h in hint)}?" if hint else
               "See timm.list_models() for the names.")
        )
    load = bool(pretrained)
    try:
        net = timm.create_model(arch, pretrained=load, **kwargs)
    except (OSError, RuntimeError, ValueError, ConnectionError) as e:
        if not load:
            raise ModelError(f"timm could not build '{arch}': {e}") from e
        raise ModelError(
            f"could not load pretrained weights for '{spec.name}' ({type(e).__name__}: {e}). "
            "If this machine is offline, download the weights once elsewhere (e.g. "
            "timm.create_model(..., pretrained=True) then save_file(model.state_dict(), "
            "'w.safetensors')) and set model.pretrained to that local file; or set "
            "model.pretrained: false."
        ) from e
    if load:
        cfg = net.pretrained_cfg
        mean, std = list(cfg.get("mean", (0.0,))), list(cfg.get("std", (1.0,)))
        if len(mean) != channels:
            mean, std = [sum(mean) / len(mean)] * channels, [sum(std) / len(std)] * channels
    else:
        mean, std = [0.0] * channels, [1.0] * channels
    del height, width  # timm backbones pool globally and take any input size
    resolved = net.pretrained_cfg.get("architecture") or arch
    return net, mean, std, f"timm:{resolved}"
