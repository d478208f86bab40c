"""The server under attack: its memory and /healthz latency during the image-bomb and
slow-connection attacks of issue 9 (loopback only).

Starts ``launchml serve`` on 127.0.0.1 with its default limits (or the flags after
``--``), then, while a sampler asks ``/healthz`` and reads the server's RSS every
``--every`` seconds:

1. image bomb: ``--bombs`` valid 9000x9000 16-bit PNGs (~160 KB each, 2.6 GB as
   float64 before the fix), ``--concurrency`` at a time, to /v1/predict;
2. slow connections: ``--stalled`` connections that send half a request head and
   stall (slowloris), held until the server closes them.

Prints, per phase, the server's RSS (start, peak, end), /healthz latency (median,
max) and failures, and the answers the attack got; ``--json`` writes it all.

    python bench/serve_audit.py [--package runs/x/model] [--json out.json] \
        [-- --max-connections 500]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

from machine import cpu_info  # bench/machine.py: one copy for every bench script

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # the attack payloads live with the tests that use them

from tests.security.payloads import (  # noqa: E402
    closed_by_server,
    png_bomb,
    stalled_connections,
    start_server,
)


def tiny_package(root: Path) -> Path:
    """A seed_cnn trained one epoch on 16 random 24x24 images."""
    import numpy as np
    from PIL import Image

    import launchml

    rng = np.random.default_rng(0)
    for c in ("a", "b"):
        (root / "data" / c).mkdir(parents=True, exist_ok=True)
        for i in range(8):
            Image.fromarray(rng.integers(0, 255, (24, 24, 3), dtype=np.uint8)).save(
                root / "data" / c / f"{i}.png")
    cfg = {"name": "audit", "output_dir": str(root / "runs"), "seed": 0,
           "data": {"train": str(root / "data"), "target_size": [24, 24]},
           "model": {"name": "seed_cnn"}, "train": {"epochs": 1, "batch_size": 8}}
    return launchml.run(cfg, stages=["prepare", "train", "deploy"], overwrite=True).dir.model


class Sampler(threading.Thread):
    """Asks /healthz (a new connection each time) and reads the RSS every ``every`` s."""

    def __init__(self, server, every: float) -> None:
        super().__init__(daemon=True)
        self.server, self.every = server, every
        self.samples: list[dict] = []
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.is_set():
            t0 = time.perf_counter()
            try:
                r = httpx.get(f"{self.server.url}/healthz", timeout=10,
                              headers={"connection": "close"})
                ok = r.status_code == 200
            except httpx.HTTPError:
                ok = False
            self.samples.append({"t": time.time(), "ok": ok,
                                 "latency_ms": (time.perf_counter() - t0) * 1000,
                                 "rss_mb": self.server.rss_mb()})
            self.done.wait(self.every)

    def summary(self) -> dict:
        lat = [s["latency_ms"] for s in self.samples if s["ok"]]
        rss = [s["rss_mb"] for s in self.samples]
        return {"samples": len(self.samples),
                "healthz_failed": sum(not s["ok"] for s in self.samples),
                "healthz_ms_median": round(statistics.median(lat), 1) if lat else None,
                "healthz_ms_max": round(max(lat), 1) if lat else None,
                "rss_mb_start": round(rss[0], 1), "rss_mb_peak": round(max(rss), 1),
                "rss_mb_end": round(rss[-1], 1)}


def phase(server, every: float, attack) -> dict:
    sampler = Sampler(server, every)
    sampler.start()
    t0 = time.perf_counter()
    try:
        result = attack()
    finally:
        sampler.done.set()
        sampler.join()
    return {**sampler.summary(), "seconds": round(time.perf_counter() - t0, 2), **result}


def bomb_attack(server, n: int, concurrency: int) -> dict:
    bomb = png_bomb(9000, 9000)

    def send(_: int) -> str:
        try:
            return str(httpx.post(f"{server.url}/v1/predict", timeout=120,
                                  files={"file": ("bomb.png", bomb, "image/png")}).status_code)
        except httpx.HTTPError as e:
            return type(e).__name__

    with ThreadPoolExecutor(concurrency) as pool:
        answers = Counter(pool.map(send, range(n)))
    return {"attack": f"{n} x 9000x9000 16-bit PNG ({len(bomb) / 1e3:.0f} KB each), "
                      f"{concurrency} at a time", "answers": dict(answers)}


def slow_attack(server, n: int) -> dict:
    socks = stalled_connections("127.0.0.1", server.port, n)
    try:
        t0 = time.perf_counter()
        answers = [closed_by_server(s, timeout=120) for s in socks]
        kinds = Counter("still open" if a is None else "408 JSON" if b" 408 " in a[:20]
                        else "closed (evicted)" if a == b"" else a[:12].decode(errors="replace")
                        for a in answers)
        return {"attack": f"{n} connections sending half a request head, then nothing",
                "answers": dict(kinds), "all_closed_after_s": round(time.perf_counter() - t0, 1)}
    finally:
        for s in socks:
            s.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--package", type=Path, help="a model package (default: a tiny one)")
    ap.add_argument("--bombs", type=int, default=16)
    ap.add_argument("--concurrency", type=int, default=4)
    ap.add_argument("--stalled", type=int, default=1000)
    ap.add_argument("--every", type=float, default=0.25, help="seconds between samples")
    ap.add_argument("--json", type=Path)
    ap.add_argument("serve_args", nargs="*", help="flags for launchml serve (after --)")
    args = ap.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        package = args.package or tiny_package(Path(tmp))
        server = start_server(package, *args.serve_args)
        try:
            httpx.get(f"{server.url}/healthz", timeout=30).raise_for_status()
            out = {"cpu": cpu_info(), "serve_args": args.serve_args,
                   "rss_mb_idle": round(server.rss_mb(), 1),
                   "image_bomb": phase(server, args.every,
                                       lambda: bomb_attack(server, args.bombs, args.concurrency)),
                   "slow_connections": phase(server, args.every,
                                             lambda: slow_attack(server, args.stalled))}
        finally:
            server.proc.terminate()
            server.proc.wait(timeout=30)

    cpu = out["cpu"]
    print(f"CPU: {cpu['capability']} ({', '.join(cpu['flags']) or 'no avx2'}), {cpu['cores']} "
          f"cores, load {cpu['load_1min']:.1f} (other processes share the CPU when it is high)")
    print(f"server RSS when idle: {out['rss_mb_idle']} MB")
    for name in ("image_bomb", "slow_connections"):
        p = out[name]
        print(f"\n{name}: {p['attack']}\n  answers: {p['answers']}\n"
              f"  RSS MB start/peak/end: {p['rss_mb_start']} / {p['rss_mb_peak']} / "
              f"{p['rss_mb_end']}\n  /healthz: {p['samples'] - p['healthz_failed']}/"
              f"{p['samples']} answered, median {p['healthz_ms_median']} ms, max "
              f"{p['healthz_ms_max']} ms; attack took {p['seconds']} s")
    if args.json:
        args.json.write_text(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
