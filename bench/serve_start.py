"""How fast and how small the REST server starts: PyTorch engine vs ONNX engine.

Trains the article's CNN for one epoch on scikit-learn's digits written as 64x64 PNG
folders (a ~10 MB package), then starts ``launchml serve`` with each engine several
times and records the seconds until ``/healthz`` answers and the server's resident
memory then. Also times ``launchml --help``.

    python bench/serve_start.py [--runs 3] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def start_once(package: Path, engine: str) -> tuple[float, float]:
    port = _port()
    t0 = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "launchml", "serve", str(package), "--port",
                             str(port), "--engine", engine], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "LAUNCHML_QUIET": "1"})
    try:
        # uvicorn says on stderr when its socket accepts connections: wait for that line
        # (the real condition), then ask /healthz once
        seen = []
        for line in proc.stderr:
            seen.append(line)
            if "Uvicorn running on" in line:
                break
        else:
            raise RuntimeError(f"server exited with {proc.wait()}: {''.join(seen)[-2000:]}")
        r = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=30)
        r.raise_for_status()
        return time.perf_counter() - t0, _rss_mb(proc.pid)
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    import launchml
    from launchml.data.samples import write_digits_folder

    work = Path(tempfile.mkdtemp(prefix="launchml-serve-bench-"))
    digits = write_digits_folder(work / "digits")
    run = launchml.run({"name": "cnn", "output_dir": str(work / "runs"), "seed": 0,
                        "data": {"train": str(digits / "train"), "target_size": [64, 64],
                                 "color_mode": "grayscale"},
                        "model": {"name": "seed_cnn"}, "train": {"epochs": 1},
                        "optimize": {"int8": False, "latency_runs": 2}}, verbose=0)
    size = sum(p.stat().st_size for p in run.dir.model.iterdir()) / 1e6
    out: dict = {"package_mb": round(size, 1)}
    t = []
    for _ in range(args.runs):
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-m", "launchml", "--help"], check=True,
                       capture_output=True)
        t.append(time.perf_counter() - t0)
    out["help_s"] = round(statistics.median(t), 3)
    for engine in ("torch", "onnx"):
        runs = [start_once(run.dir.model, engine) for _ in range(args.runs)]
        out[engine] = {"start_s_median": round(statistics.median(r[0] for r in runs), 2),
                       "rss_mb_median": round(statistics.median(r[1] for r in runs)),
                       "runs": args.runs}
    import torch

    out["cpu_capability"] = torch.backends.cpu.get_cpu_capability()
    print(f"package {out['package_mb']} MB; launchml --help {out['help_s']} s "
          f"(cpu {out['cpu_capability']})")
    for engine in ("torch", "onnx"):
        r = out[engine]
        print(f"  serve --engine {engine:5s}: ready in {r['start_s_median']:.2f} s, "
              f"{r['rss_mb_median']} MB RSS (median of {r['runs']})")
    ratio = out["torch"]["start_s_median"] / out["onnx"]["start_s_median"]
    print(f"  onnx starts {ratio:.1f}x faster, with "
          f"{out['onnx']['rss_mb_median'] / out['torch']['rss_mb_median']:.2f}x the memory")
    if args.json:
        args.json.write_text(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
