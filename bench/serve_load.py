"""Load test of the multi-model server: micro-batching on vs off, and the ceiling.

Trains the article's CNN (seed_cnn, 150x150 RGB, the generated two-class shapes folder
like the article's) for one epoch, or takes --model. Then, for batching on
(--max-batch-size 32, --max-wait-ms 5) and off (--max-batch-size 1), starts
``launchml serve --models <package>`` on the loopback, drives it with --clients
concurrent keep-alive clients (one 150x150 JPEG per request, base64 JSON) for
--seconds, and reports throughput, p50/p95/p99 latency, errors and the server's
resident memory at the start and the end. The ceiling is the same engine in process
(Predictor.predict_rows on batches of 32 of the same JPEG bytes): what the server
could reach with no HTTP at all. The clients run in this process (asyncio, raw
HTTP/1.1 on sockets: little CPU) and share the machine with the server.

    python bench/serve_load.py [--clients 32] [--seconds 60] [--json out.json]

Targets (2-core CPU, the article's CNN, 32 clients): batching >= 4x the unbatched
throughput and >= 60% of the ceiling; zero errors over 60 s; memory growth < 10%.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from machine import cpu_info  # bench/machine.py: one copy for every bench script

TARGETS = {"speedup": 4.0, "of_ceiling": 0.6, "rss_growth": 0.10}


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def train_model(work: Path) -> Path:
    import launchml
    from launchml.data.samples import write_shapes_folder

    data = write_shapes_folder(work / "shapes", n_train=64, n_test=16)
    run = launchml.run({"name": "cnn", "output_dir": str(work / "runs"), "seed": 0,
                        "data": {"train": str(data / "train"), "test": str(data / "test"),
                                 "target_size": [150, 150]},
                        "model": {"name": "seed_cnn"}, "train": {"epochs": 1},
                        "optimize": {"int8": False, "latency_runs": 2},
                        "evaluate": {"report": False}}, verbose=0)
    return run.dir.model


def sample_image(model: Path) -> bytes:
    """A JPEG of the model's input size (the shapes test set when the bench trained it)."""
    found = sorted(model.parent.parent.parent.glob("shapes/test/*/*.jpg"))
    if found:
        return found[0].read_bytes()
    import io

    import numpy as np
    from PIL import Image

    from launchml.package import load_package

    pkg = load_package(model)
    state = next(s for s in pkg.preprocessing.values() if s.get("type") == "image")
    h, w = state.get("target_size") or (150, 150)
    buf = io.BytesIO()
    arr = np.random.default_rng(0).integers(0, 255, (h, w, 3), dtype=np.uint8)
    Image.fromarray(arr).save(buf, format="JPEG")
    return buf.getvalue()


def ceiling(model: Path, image: bytes, seconds: float) -> float:
    """Images per second of the engine in process, batches of 32 (the server's batch)."""
    from launchml.deploy.models import serve_engine
    from launchml.deploy.predictor import Predictor

    p = Predictor.load(model, engine=serve_engine(model, "auto"))
    batch = [image] * 32
    p.predict_rows(batch)  # warm-up
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        p.predict_rows(batch)
        n += len(batch)
    return n / (time.perf_counter() - t0)


async def _client(port: int, request: bytes, stop: float, lat: list[float],
                  errors: list[str]) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        while time.perf_counter() < stop:
            t0 = time.perf_counter()
            writer.write(request)
            await writer.drain()
            status = (await reader.readline()).split(b" ", 2)
            length = 0
            while True:
                line = await reader.readline()
                if line in (b"\r\n", b""):
                    break
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":")[1])
            body = await reader.readexactly(length)
            if len(status) < 2 or status[1] != b"200":
                errors.append(f"{status[1:2]} {body[:200]!r}")
                if b"connection: close" in body.lower():
                    break
                continue
            lat.append(time.perf_counter() - t0)
    except (OSError, asyncio.IncompleteReadError) as e:
        errors.append(f"{type(e).__name__}: {e}")
    finally:
        writer.close()


def drive(model: Path, image: bytes, *, batch: int, clients: int, seconds: float,
          warmup: float) -> dict[str, float]:
    port = _port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "launchml", "serve", "--models", f"cnn={model}", "--port",
         str(port), "--max-batch-size", str(batch), "--max-wait-ms", "5",
         "--max-queue", str(max(64, clients * 2))],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "LAUNCHML_QUIET": "1"})
    try:
        for line in proc.stderr:  # uvicorn says when it listens
            if "Uvicorn running on" in line:
                break
        else:
            raise RuntimeError(f"the server exited with {proc.wait()}")
        import threading

        threading.Thread(target=lambda: [None for _ in proc.stderr], daemon=True).start()
        body = json.dumps({"image": base64.b64encode(image).decode()}).encode()
        request = (f"POST /v1/models/cnn/predict HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                   f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
                   ).encode() + body

        async def run(span: float) -> tuple[list[float], list[str]]:
            lat: list[float] = []
            errors: list[str] = []
            stop = time.perf_counter() + span
            await asyncio.gather(*(_client(port, request, stop, lat, errors)
                                   for _ in range(clients)))
            return lat, errors

        asyncio.run(run(warmup))  # engine warm, connections and threads made
        rss_start = _rss_mb(proc.pid)
        t0 = time.perf_counter()
        lat, errors = asyncio.run(run(seconds))
        elapsed = time.perf_counter() - t0
        rss_end = _rss_mb(proc.pid)
    finally:
        proc.terminate()
        proc.wait(timeout=60)
    lat.sort()

    def q(p: float) -> float:
        return round(1000 * lat[min(len(lat) - 1, int(p * len(lat)))], 1) if lat else 0.0

    return {"rps": round(len(lat) / elapsed, 1), "p50_ms": q(0.50), "p95_ms": q(0.95),
            "p99_ms": q(0.99), "errors": len(errors), "rss_mb_start": round(rss_start, 1),
            "rss_mb_end": round(rss_end, 1), "error_samples": errors[:3]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", type=Path, help="a package (default: train the article's CNN)")
    ap.add_argument("--clients", type=int, default=32)
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--warmup", type=float, default=5.0)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()

    cpu = cpu_info()
    scratch = None if args.model else tempfile.TemporaryDirectory(prefix="launchml-load-")
    model = args.model or train_model(Path(scratch.name))
    image = sample_image(model)
    top = ceiling(model, image, min(args.seconds, 20.0))
    runs = {}
    for name, batch in (("batching", 32), ("no_batching", 1)):
        runs[name] = drive(model, image, batch=batch, clients=args.clients,
                           seconds=args.seconds, warmup=args.warmup)
    on, off = runs["batching"], runs["no_batching"]
    print(f"cpu {cpu['capability']} flags {','.join(cpu['flags'])} cores {cpu['cores']} "
          f"load(1 min, at start) {cpu['load_1min']}")
    print(f"{args.clients} clients, {args.seconds:g} s each; ceiling (in process, batches "
          f"of 32): {top:.1f} images/s")
    for name, r in runs.items():
        growth = r["rss_mb_end"] / r["rss_mb_start"] - 1
        print(f"  {name:12s} {r['rps']:8.1f} req/s  p50 {r['p50_ms']:7.1f} ms  p95 "
              f"{r['p95_ms']:7.1f} ms  p99 {r['p99_ms']:7.1f} ms  errors {r['errors']}  "
              f"RSS {r['rss_mb_start']:.0f} -> {r['rss_mb_end']:.0f} MB ({growth:+.1%})")
        for e in r["error_samples"]:
            print(f"    error: {e}")
    speedup = on["rps"] / off["rps"] if off["rps"] else float("inf")
    share = on["rps"] / top if top else 0.0
    growth = on["rss_mb_end"] / on["rss_mb_start"] - 1
    print(f"batching: {speedup:.2f}x the unbatched throughput (target >= "
          f"{TARGETS['speedup']:g}x), {share:.0%} of the ceiling (target >= "
          f"{TARGETS['of_ceiling']:.0%}), errors {on['errors']} (target 0), memory "
          f"{growth:+.1%} (target < {TARGETS['rss_growth']:.0%})")
    if args.json:
        keys = ("rps", "p50_ms", "p99_ms", "errors", "rss_mb_start", "rss_mb_end")
        out = {"batching": {k: on[k] for k in keys}, "no_batching": {k: off[k] for k in keys},
               "ceiling_rps": round(top, 1), "clients": args.clients,
               "seconds": args.seconds}
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
