"""The machine a bench figure holds for, one copy for every bench script: torch's CPU
capability, the /proc/cpuinfo flags that decide bf16 and int8 speed, the cores and the
load average (on a shared machine the figures say how busy it was)."""

from __future__ import annotations

import os
from pathlib import Path

FLAGS = ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "avx512_bf16", "amx_tile", "amx_bf16")


def cpu_flags() -> set[str]:
    """Every flag of the first CPU in /proc/cpuinfo (empty where there is none)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                return set(line.split(":", 1)[1].split())
    except OSError:  # not Linux
        pass
    return set()


def capability() -> str | None:
    """``torch.backends.cpu.get_cpu_capability()``, or None without torch."""
    try:
        import torch
    except ImportError:
        return None
    return torch.backends.cpu.get_cpu_capability()


def cpu_info() -> dict:
    flags = cpu_flags()
    return {"capability": capability(), "flags": [f for f in FLAGS if f in flags],
            "cores": os.cpu_count(), "load_1min": round(os.getloadavg()[0], 2)}
