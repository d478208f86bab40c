"""``python -m launchml.optimize.memory PACKAGE ENGINE BATCH.npz``: peak memory of serving.

Loads the package on the engine, scores the batch twice and prints
``{"peak_rss_mb": ...}``, the process's peak resident set (what a server holding
this variant needs). Run in a fresh process by ``measure.peak_memory_mb``.
"""

from __future__ import annotations

import json
import resource
import sys
from pathlib import Path

import numpy as np


def main(argv: list[str]) -> None:
    from launchml.deploy.predictor import Predictor

    package, engine, npz = argv
    predictor = Predictor.load(package, engine=engine)  # type: ignore[arg-type]
    with np.load(npz, allow_pickle=False) as data:
        batch = {k: data[k] for k in data.files}
    for _ in range(2):
        predictor.logits(batch)
    print(json.dumps({"peak_rss_mb": _peak_kb() / 1024}))


def _peak_kb() -> float:
    """This process's own peak resident set: VmHWM (Linux). Not ``ru_maxrss``, which Linux
    carries over exec from the parent that forked it (the parent holding PyTorch)."""
    try:
        for line in Path("/proc/self/status").read_text(encoding="ascii").splitlines():
            if line.startswith("VmHWM:"):
                return float(line.split()[1])
    except OSError:
        pass
    return float(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)  # KB on Linux


if __name__ == "__main__":
    main(sys.argv[1:])
