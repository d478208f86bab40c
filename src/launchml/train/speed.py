"""Measured speed defaults for the training loop, recorded in each run.

- glibc's malloc returns freed memory to the OS after every step on Linux;
  PyTorch's CPU allocations then pay page faults again each step. Disabling
  mmap for large blocks and raising the trim threshold keeps that memory in
  the process (seed CNN train step, 150x150, batch 32, 2-core AVX2 CPU:
  15 -> 52 img/s).
- channels-last only on GPUs: on that AVX2 CPU the same step ran 52 img/s
  contiguous and 20 img/s channels-last.
- bf16 autocast by default on GPUs; on CPUs only when asked for, and with a
  warning where the CPU has no native bf16 (AVX2 only: ~10x slower, emulated).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys
from typing import Any

# torch is imported by the functions that use it: the CLI calls tune_allocator at start

M_TRIM_THRESHOLD = -1
M_MMAP_MAX = -4
_TUNED: dict[str, Any] = {}


def tune_allocator() -> dict[str, Any]:
    """Apply the glibc malloc fix once per process (Linux only); return what was done."""
    if _TUNED:
        return _TUNED
    if not sys.platform.startswith("linux") or os.environ.get("LAUNCHML_NO_MALLOPT"):
        _TUNED["mallopt"] = False
        return _TUNED
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        ok = libc.mallopt(M_MMAP_MAX, 0) == 1 and libc.mallopt(M_TRIM_THRESHOLD, 2**30) == 1
    except (OSError, AttributeError):  # musl and others have no mallopt
        ok = False
    _TUNED["mallopt"] = ok
    return _TUNED


def resolve_accelerator(requested: str) -> str:
    import torch

    if requested == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if requested in ("gpu", "cuda") and not torch.cuda.is_available():
        from launchml.errors import ConfigError

        raise ConfigError(
            "train.accelerator: 'gpu' was asked for but no CUDA device is visible. "
            "Fix: set train.accelerator: auto (or cpu)."
        )
    return "cuda" if requested in ("gpu", "cuda") else "cpu"


def cpu_has_native_bf16() -> bool:
    """True on CPUs with AVX512-BF16 or AMX; elsewhere bf16 matmuls/convs are emulated."""
    import torch

    cpu = torch.cpu
    checks = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    return any(getattr(cpu, name, lambda: False)() for name in checks)


def resolve_precision(requested: str, accelerator: str) -> str:
    """'auto' is bf16 on GPUs that support it, fp32 elsewhere (bf16 on CPU is opt-in)."""
    import torch

    if requested == "bf16" and accelerator == "cpu" and not cpu_has_native_bf16():
        from launchml import console

        capability = torch.backends.cpu.get_cpu_capability()
        console.warn(
            f"train.precision: bf16 on a CPU without native bf16 ({capability}: no "
            "AVX512-BF16/AMX) is emulated and much slower than "
            "fp32 (measured ~10x on an AVX2 CPU). Fix: precision: auto (fp32 here)."
        )
    if requested != "auto":
        return requested
    if accelerator == "cuda" and torch.cuda.is_bf16_supported():
        return "bf16"
    return "fp32"


def resolve_channels_last(requested: bool | str, accelerator: str) -> bool:
    """'auto': channels-last on GPUs only. On an AVX2 CPU the seed CNN measured 52 img/s
    contiguous against 20 img/s channels-last (oneDNN reorders every layer there)."""
    if requested == "auto":
        return accelerator == "cuda"
    return bool(requested)


FABRIC_PRECISION = {"fp32": "32-true", "bf16": "bf16-mixed"}
