"""Any timm backbone: ``model.name: timm:<architecture>``.

``model.network.pretrained`` is ``false`` (random init), ``true`` (timm's default
weights from the Hugging Face Hub), a hub name (``timm/resnet18.a1_in1k`` or
``hf-hub:timm/resnet18.a1_in1k``), or a local weights file (.safetensors /
.pth / .bin). Offline, a missing download is a
``ModelError`` that says how to use a local file instead. When pretrained
weights are used, the model normalizes inputs with their mean/std.

Offline is detected before any download (``offline_reason``): HF_HUB_OFFLINE
says so at once, else one TCP connection to the weights' host must open within
``NETWORK_CHECK_S`` seconds. Offline, weights already in the local cache still
load; missing ones fail at once instead of after a minute of download retries.
"""

from __future__ import annotations

import difflib
import os
import socket
import threading
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit

from torch import nn

from launchml.errors import MissingDependencyError, ModelError
from launchml.models import NetworkSpec, register_network


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


NETWORK_CHECK_S = 2.0
_CHECK_TTL_S = 30.0  # one check serves the tokenizer, the model and every column for a while
_checks: dict[tuple[str, int], tuple[float, bool]] = {}


def _truthy(value: str | None) -> bool:
    return (value or "").strip().upper() in {"1", "ON", "YES", "TRUE"}


def _hub_offline_flag() -> bool:
    """HF_HUB_OFFLINE / TRANSFORMERS_OFFLINE, as huggingface_hub read them or as set since."""
    try:
        from huggingface_hub import constants
    except ImportError:  # pragma: no cover - a dependency of timm and transformers
        constants = None
    return (bool(constants is not None and constants.HF_HUB_OFFLINE)
            or _truthy(os.environ.get("HF_HUB_OFFLINE"))
            or _truthy(os.environ.get("TRANSFORMERS_OFFLINE")))


def _hub_endpoint() -> str:
    try:
        from huggingface_hub import constants
    except ImportError:  # pragma: no cover
        return os.environ.get("HF_ENDPOINT", "https://huggingface.co")
    return constants.ENDPOINT


def _target(url: str) -> tuple[str, int]:
    """The host and port a download of ``url`` connects to: the URL's own, or its proxy's."""
    parts = urlsplit(url)
    host, scheme = parts.hostname or "", parts.scheme or "https"
    port = parts.port or (443 if scheme == "https" else 80)
    proxies = urllib.request.getproxies()
    proxy = proxies.get(scheme) or proxies.get("all")
    if proxy and not urllib.request.proxy_bypass(host):
        p = urlsplit(proxy if "://" in proxy else "http://" + proxy)
        if p.hostname:
            return p.hostname, p.port or (443 if p.scheme == "https" else 80)
    return host, port


def _can_connect(host: str, port: int, timeout: float) -> bool:
    """Whether a TCP connection opens within ``timeout`` s, the name lookup included."""
    result: list[bool] = []

    def probe() -> None:
        try:
            socket.create_connection((host, port), timeout=timeout).close()
            result.append(True)
        except OSError:
            result.append(False)

    # a thread bounds the DNS lookup too, which socket timeouts do not cover
    thread = threading.Thread(target=probe, name="launchml-network-check", daemon=True)
    thread.start()
    thread.join(timeout)
    return bool(result and result[0])


def offline_reason(url: str | None = None) -> str | None:
    """Why downloading ``url`` (default: the Hugging Face Hub) cannot work now, or None.

    Called before a download so an offline machine gets its error at once: a
    download itself retries for about a minute before it gives up. Proxies
    (HTTPS_PROXY, NO_PROXY) are honoured: the proxy is what must answer.
    """
    if url is None and _hub_offline_flag():
        return "HF_HUB_OFFLINE is set"
    host, port = _target(url or _hub_endpoint())
    if not host:
        return None
    now = time.monotonic()
    seen = _checks.get((host, port))
    if seen is None or now - seen[0] > _CHECK_TTL_S:
        seen = (now, _can_connect(host, port, NETWORK_CHECK_S))
        _checks[(host, port)] = seen
    if seen[1]:
        return None
    return f"no connection to {host}:{port} within {NETWORK_CHECK_S:g} s"


@contextmanager
def hub_cache_only() -> Iterator[None]:
    """Hugging Face Hub downloads read the local cache only, and fail at once on a miss.

    Sets huggingface_hub's offline switch for the block (model building is single-threaded).
    """
    from huggingface_hub import constants

    before = constants.HF_HUB_OFFLINE
    constants.HF_HUB_OFFLINE = True
    try:
        yield
    finally:
        constants.HF_HUB_OFFLINE = before


def _weights_url(timm, arch: str) -> str | None:
    """Where timm downloads the default weights of ``arch`` from: None for the Hugging Face Hub."""
    if arch.startswith("hf-hub:"):
        return None
    cfg = timm.models.get_pretrained_cfg(arch)
    if cfg is not None and not cfg.hf_hub_id and cfg.url:
        return cfg.url
    return None


def _in_torch_cache(url: str) -> bool:
    """Whether timm finds ``url``'s file in its download cache (torch hub checkpoints)."""
    import torch

    name = os.path.basename(urlsplit(url).path)
    return (Path(torch.hub.get_dir()) / "checkpoints" / name).is_file()


def _pretrained_error(spec: NetworkSpec, e: Exception | str) -> ModelError:
    why = e if isinstance(e, str) else f"{type(e).__name__}: {e}"
    return ModelError(
        f"could not load pretrained weights for '{spec.name}' ({why}). "
        "If this machine is offline, download the weights once elsewhere (e.g. "
        "timm.create_model(..., pretrained=True) then save_file(model.state_dict(), "
        "'w.safetensors')) and set model.network.pretrained to that local file; or set "
        "model.network.pretrained: false."
    )


SMALL_RESNET = "small_resnet"


def local_pretrained(cache_dir: str | Path | None = None) -> tuple[str, str] | None:
    """A timm backbone whose pretrained weights are at hand in the local Hugging Face cache:
    ``("timm:<arch>", "timm/<arch>.<tag>")`` for the smallest weights file there, or None.
    Reads folders only (no network, no download): ``model: auto`` fine-tunes it on image
    folders when it is there (train/select.py)."""
    from huggingface_hub import constants

    root = Path(cache_dir or constants.HF_HUB_CACHE)
    found = []
    for repo in sorted(root.glob("models--timm--*")):
        files = [f for pattern in ("model.safetensors", "pytorch_model.bin")
                 for f in repo.glob(f"snapshots/*/{pattern}")]
        if files:
            name = repo.name.removeprefix("models--timm--")
            found.append((min(f.stat().st_size for f in files), name))
    if not found:
        return None
    name = min(found)[1]
    return f"timm:{name.split('.')[0]}", f"timm/{name}"


def small_resnet(*, height: int, width: int, channels: int, num_outputs: int,
                 drop_rate: float) -> nn.Module:
    """``timm:small_resnet``: timm's ResNet sized for small images (trained from scratch).

    One BasicBlock per stage, 32-64-128-256 channels (1.2 M weights), and a 3x3 stem
    without max-pooling, of stride 1 for images up to 24 pixels a side and 2 above: the
    ImageNet stem (7x7 stride 2, then a max-pool) would leave a 16x16 digit 4x4 pixels
    before the first block. Built from (height, width) alone, so a package rebuilds it.
    """
    from timm.models.resnet import BasicBlock, ResNet

    net = ResNet(BasicBlock, [1, 1, 1, 1], num_classes=num_outputs, in_chans=channels,
                 channels=(32, 64, 128, 256), drop_rate=drop_rate)
    stride = 1 if min(height, width) <= 24 else 2
    net.conv1 = nn.Conv2d(channels, net.bn1.num_features, 3, stride, 1, bias=False)
    net.maxpool = nn.Identity()
    return net


@register_network("timm")
def build_timm(*, spec: NetworkSpec, height: int, width: int, channels: int,
               num_outputs: int, for_loading: bool) -> tuple[nn.Module, list, list, str]:
    timm = _timm()
    arch = spec.name.removeprefix("timm:")
    if arch == SMALL_RESNET:
        if spec.pretrained and not for_loading:
            raise ModelError("model.network.pretrained: timm:small_resnet has no pretrained "
                             "weights (it is trained from scratch). Fix: pretrained: false, "
                             "or a timm architecture with weights.")
        net = small_resnet(height=height, width=width, channels=channels,
                           num_outputs=num_outputs, drop_rate=spec.dropout)
        return net, [0.0] * channels, [1.0] * channels, f"timm:{SMALL_RESNET}"
    pretrained = False if for_loading else spec.pretrained
    kwargs: dict = {"num_classes": num_outputs, "in_chans": channels, "drop_rate": spec.dropout}
    if isinstance(pretrained, str) and _is_hub_name(pretrained):
        arch, pretrained = "hf-hub:" + pretrained.removeprefix("hf-hub:"), True
    elif isinstance(pretrained, str):
        path = Path(pretrained)
        if not path.is_file():
            raise ModelError(
                f"model.network.pretrained: weights file '{pretrained}' does not exist. Fix: "
                "give the "
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
    offline = None
    if load and "pretrained_cfg_overlay" not in kwargs:  # a download, not a local file
        url = _weights_url(timm, arch)
        offline = offline_reason(url)
        if offline and url is not None and not _in_torch_cache(url):
            raise _pretrained_error(spec, f"offline: {offline}; not in the download cache")
    try:
        if offline:  # cached weights still load; a cache miss fails at once
            with hub_cache_only():
                net = timm.create_model(arch, pretrained=load, **kwargs)
        else:
            net = timm.create_model(arch, pretrained=load, **kwargs)
    except (OSError, RuntimeError, ValueError, ConnectionError) as e:
        if not load:
            raise ModelError(f"timm could not build '{arch}': {e}") from e
        why = f"offline: {offline}; not in the local cache" if offline else e
        raise _pretrained_error(spec, why) from e
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
