"""How every variant is measured, the same way: on the engine that serves it.

Batch-1 latency (p50/p95 over ``repeats`` timed calls after ``warmup`` calls) and
batch-64 throughput go through ``Predictor.logits`` (prepared arrays in, raw
outputs out), so each engine pays what it pays in serving. Peak memory is the
peak resident set of a fresh process that loads the variant and scores a
batch of 64 (``python -m launchml.optimize.memory``): a process that already
loaded every other variant could not tell one variant's memory from another's.
FLOPs (multiply-accumulates at batch 1) and parameters are counted on the
PyTorch network a variant was made from (``flops_and_params``); a quantized
graph does the same operations in int8, so it keeps its source's counts.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

CPU_FLAGS = ("avx2", "fma", "avx512f", "avx512_vnni", "avx_vnni", "avx512_bf16", "amx_tile",
             "amx_int8", "amx_bf16")


def cpu_info() -> dict[str, Any]:
    """What int8 and bf16 speed depend on: the CPU's vector extensions and core count."""
    flags: set[str] = set()
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags") and not flags:
                flags = set(line.split(":", 1)[1].split())
            elif line.startswith("model name") and not model:
                model = line.split(":", 1)[1].strip()
    except OSError:  # not Linux: the capability below still says which kernels run
        pass
    out: dict[str, Any] = {"cpu_flags": [f for f in CPU_FLAGS if f in flags], "cpu_model": model,
                           "cpu_count": os.cpu_count()}
    try:
        import torch

        out["torch_cpu_capability"] = torch.backends.cpu.get_cpu_capability()
    except ImportError:  # pragma: no cover - torch is a core dependency
        pass
    return out


def engine_threads(engine: str) -> int:
    """Intra-op threads the engine uses: PyTorch's setting; ONNX Runtime's default (0)
    means one per physical core."""
    if engine == "torch":
        import torch

        return int(torch.get_num_threads())
    import psutil

    return int(psutil.cpu_count(logical=False) or os.cpu_count() or 1)


def batch_of(inputs: dict[str, np.ndarray], n: int) -> dict[str, np.ndarray]:
    """``n`` rows of ``inputs`` (repeated when the split has fewer)."""
    rows = len(next(iter(inputs.values())))
    idx = np.arange(n) % rows
    return {k: np.asarray(v[idx]) for k, v in inputs.items()}


def throughput(predictor: Any, batch: dict[str, np.ndarray], repeats: int,
               warmup: int) -> float:
    """Rows per second scoring ``batch`` (64 rows): the median of ``repeats`` timed calls."""
    for _ in range(warmup):
        predictor.logits(batch)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        predictor.logits(batch)
        times.append(time.perf_counter() - t0)
    n = len(next(iter(batch.values())))
    return round(n / float(np.median(times)), 1)


def peak_memory_mb(package: Path, engine: str, batch: dict[str, np.ndarray]) -> float | None:
    """Peak resident memory (MB) of a fresh process that loads the package on ``engine``
    and scores ``batch``; None where it cannot be measured (the message is logged)."""
    from launchml import console

    with tempfile.TemporaryDirectory(prefix="launchml-mem-") as tmp:
        npz = Path(tmp) / "batch.npz"
        np.savez(npz, **batch)
        cmd = [sys.executable, "-m", "launchml.optimize.memory", str(package), engine, str(npz)]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, check=False)
    if proc.returncode != 0:
        console.warn(f"optimize: peak memory of '{package}' not measured: "
                     f"{proc.stderr.strip().splitlines()[-1:] or proc.returncode}")
        return None
    return round(float(json.loads(proc.stdout.strip().splitlines()[-1])["peak_rss_mb"]), 1)


def flops_and_params(net: Any, example: dict[str, np.ndarray]) -> tuple[int | None, int]:
    """(multiply-accumulates of the convolution and dense layers for one row, parameters)
    of a PyTorch network; MACs are None where the network cannot run on the example.

    Counted by forward hooks (not torch-pruning's counter, whose import costs seconds:
    it loads timm and torchvision): a convolution costs output elements x (input
    channels / groups) x kernel area, a dense layer input x output features per row.
    Attention's activation products are not counted (a transformer's FLOPs are a floor).
    """
    import torch

    params = int(sum(p.numel() for p in net.parameters()))
    total = [0]

    def conv(m: Any, _: Any, out: Any) -> None:
        k = int(np.prod(m.kernel_size))
        total[0] += out.numel() * (m.in_channels // m.groups) * k

    def dense(m: Any, _: Any, out: Any) -> None:
        total[0] += out.numel() * m.in_features

    hooks = [m.register_forward_hook(conv) for m in net.modules()
             if isinstance(m, torch.nn.modules.conv._ConvNd)]
    hooks += [m.register_forward_hook(dense) for m in net.modules()
              if isinstance(m, torch.nn.Linear)]
    one = {k: torch.from_numpy(np.array(v[:1])) for k, v in example.items()}  # a copy
    try:
        with torch.inference_mode():
            net.eval()(**one)
    except Exception:  # noqa: BLE001 - a network that cannot run here: FLOPs unknown
        return None, params
    finally:
        for h in hooks:
            h.remove()
    return int(total[0]), params
