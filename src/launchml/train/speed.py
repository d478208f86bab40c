"""Speed defaults for the training loop, chosen per CPU capability and recorded in each run.

What ``auto`` picks depends on the kind of CPU (``cpu_features``: torch's
``get_cpu_capability()`` and the /proc/cpuinfo flags avx2, avx512f, avx512_bf16,
amx_bf16, avx512_vnni), not on one machine's measurement; the first line of
``events.jsonl`` records the settings, the CPU flags and why (``chosen_by``).
Measured on the seed CNN train step (150x150x3, batch 32, Adam, 2 threads, best of
interleaved rounds; bench/RESULTS.md has the full runs):

- glibc's malloc returns freed memory to the OS after every step on Linux;
  PyTorch's CPU allocations then pay page faults again each step. Disabling
  mmap for large blocks and raising the trim threshold keeps that memory in
  the process (2-core AVX2 EPYC: 15 -> 52 img/s). Every CPU.
- channels-last (NHWC) on GPUs and, for image networks, on AVX-512 CPUs. On a
  2-core AVX2 EPYC the step ran 52 img/s contiguous against 20 channels-last
  (oneDNN reorders every layer there); on a 2-core AVX-512 EPYC with AVX512-BF16
  channels-last is faster: fp32 130 -> 162 img/s, bf16 188 -> 287.
- bf16 autocast by default on GPUs that support it and, for image networks, on
  CPUs with native bf16 (AVX512-BF16 or AMX): 162 -> 287 img/s on that EPYC
  (channels-last), with the same test accuracy as fp32 in bench/seed_cnn.py
  (1.000 both) and on digits (fp32 vs bf16 over 3 seeds: -1.4 to +0.3 points,
  mean -0.3, inside the seed-to-seed spread of 3.6 points). Without native bf16
  (AVX2 only) bf16 is emulated (~10x slower): fp32, and a warning when it is
  asked for. Table, text and mixed-input networks keep fp32 and NCHW on CPUs:
  not measured faster there, and small dense layers gain little.
- the fused Adam/AdamW/SGD step (one kernel) on GPUs and, for image networks, on
  CPUs: the seed CNN's 19M-parameter Dense layer made the default (foreach) Adam
  step 23 ms against 7.4 ms fused on the AVX-512 EPYC (fp32 152 -> 172 img/s,
  bf16 264 -> 327); +3-7% with torch's AVX2 kernels. Deterministic, so
  ``--resume`` stays bit-identical.
- threads: the cores this process may run on (``sched_getaffinity``). On a
  shared machine fewer can be faster: with other processes busy on both cores
  the 2-thread bf16 step fell to ~50 img/s while 1 thread kept ~150 (OpenMP
  waits for the descheduled thread); ``train.num_threads: 1`` is the fix there.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import os
import sys
from pathlib import Path
from typing import Any

# torch is imported by the functions that use it: the CLI calls tune_allocator at start

M_TRIM_THRESHOLD = -1
M_MMAP_MAX = -4
_TUNED: dict[str, Any] = {}
CPU_FLAGS = ("avx2", "avx512f", "avx512_bf16", "amx_bf16", "avx512_vnni")


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


def _proc_cpu_flags() -> set[str]:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "flags":
                return set(value.split())
    except OSError:  # not Linux
        pass
    return set()


@functools.cache
def cpu_features() -> dict[str, Any]:
    """The CPU's kind: torch's capability (``AVX512``, ``AVX2``, ...) and the flags that
    decide the defaults (from /proc/cpuinfo; torch's own checks where it is missing)."""
    import torch

    flags = _proc_cpu_flags()
    out: dict[str, Any] = {"capability": torch.backends.cpu.get_cpu_capability()}
    out.update({f: f in flags for f in CPU_FLAGS})
    cpu = torch.cpu
    if getattr(cpu, "_is_avx512_bf16_supported", lambda: False)():
        out["avx512_bf16"] = True
    if getattr(cpu, "_is_amx_tile_supported", lambda: False)():
        out["amx_bf16"] = True
    return out


def cpu_has_native_bf16() -> bool:
    """True on CPUs with AVX512-BF16 or AMX; elsewhere bf16 matmuls/convs are emulated."""
    f = cpu_features()
    return bool(f["avx512_bf16"] or f["amx_bf16"])


def cpu_has_avx512() -> bool:
    """torch dispatches its AVX-512 kernels here (``ATEN_CPU_CAPABILITY`` may lower it)."""
    return str(cpu_features()["capability"]).upper().startswith("AVX512")


def resolve_precision(requested: str, accelerator: str, images: bool = False) -> str:
    """'auto': bf16 on GPUs that support it, and on CPUs with native bf16 for image
    networks (``images``); fp32 elsewhere."""
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
    if accelerator == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp32"
    return "bf16" if images and cpu_has_native_bf16() else "fp32"


def resolve_channels_last(requested: bool | str, accelerator: str, images: bool = False) -> bool:
    """'auto': channels-last on GPUs, and on AVX-512 CPUs for image networks (``images``).
    On an AVX2 CPU the seed CNN measured 52 img/s contiguous against 20 img/s channels-last
    (oneDNN reorders every layer there); on an AVX-512 CPU channels-last was faster
    (fp32 130 -> 162, bf16 188 -> 287 img/s)."""
    if requested == "auto":
        return accelerator == "cuda" or (images and cpu_has_avx512())
    return bool(requested)


def resolve_fused_optimizer(accelerator: str, images: bool) -> bool:
    """The fused (one kernel) Adam/AdamW/SGD step: on GPUs, and on CPUs for image networks
    (see the module docstring); tables keep the default step."""
    return accelerator == "cuda" or images


def resolve_threads(requested: int | None) -> int:
    """``train.num_threads``, else the cores this process may run on."""
    if requested:
        return requested
    try:
        return len(os.sched_getaffinity(0)) or 1
    except (AttributeError, OSError):  # not Linux
        return os.cpu_count() or 1


def speed_settings(cfg: Any, accelerator: str, images: bool) -> dict[str, Any]:
    """The speed settings of one fit and why: what ``auto`` chose on this CPU."""
    precision = resolve_precision(cfg.precision, accelerator, images)
    channels_last = resolve_channels_last(cfg.channels_last, accelerator, images)
    feats = cpu_features()
    native = "native bf16" if cpu_has_native_bf16() else "no native bf16"
    why = {}
    if cfg.precision == "auto":
        why["precision"] = (f"auto: {accelerator}" if accelerator == "cuda" else
                            f"auto: CPU {feats['capability']}, {native}, "
                            f"{'image network' if images else 'no image network'}")
    if cfg.channels_last == "auto":
        why["channels_last"] = (f"auto: {accelerator}" if accelerator == "cuda" else
                                f"auto: CPU {feats['capability']}, "
                                f"{'image network' if images else 'no image network'}")
    return {"precision": precision, "channels_last": channels_last,
            "fused_optimizer": resolve_fused_optimizer(accelerator, images),
            "num_threads": resolve_threads(cfg.num_threads), "cpu_capability": feats["capability"],
            "cpu_flags": {f: feats[f] for f in CPU_FLAGS}, "chosen_by": why}


FABRIC_PRECISION = {"fp32": "32-true", "bf16": "bf16-mixed"}
