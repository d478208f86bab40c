"""The optimize stage's trade-off table: quantized, pruned and distilled variants against
fp32 eager PyTorch (1.00x), for the article's CNN, a timm resnet18 and one table.

One run, one machine, three real launchml runs (the pipeline's own optimize stage
builds and measures every variant, so the figures are what ``launchml optimize``
reports):

  seed_cnn   the article's 150x150 CNN on a generated two-class JPEG folder; variants
             onnx, int8 (static QDQ, calibrated), pruned 50% (+ fine-tune), distilled
             into seed_cnn_small
  resnet18   timm resnet18 (no pretrained weights: nothing downloads) on the same
             folder; variants onnx, int8, pruned 50% (+ fine-tune)
  table      breast cancer (scikit-learn's copy), ``model: auto`` (an ensemble);
             variants onnx, int8 of its neural member, distilled into one LightGBM

With ``torchao`` importable (it is not a launchml dependency: ``pip install --target
DIR torchao`` and ``PYTHONPATH=DIR``), the CNN also gets a torchao int8 row
(``Int8DynamicActivationInt8WeightConfig``, eager PyTorch), measured the same way, so
ONNX Runtime and torchao are compared on this machine.

Run from the repository root with the launchml venv's Python:

    python bench/optimize.py                     # 240 train / 80 test images, 4 epochs
    python bench/optimize.py --small             # quick check: 80 / 40 images, 1 epoch
    python bench/optimize.py --json bench/out/optimize.json

Latency: batch 1, p50/p95 of ``--runs`` timed calls after 2 warm-up calls;
throughput: rows/s at batch 64; both on the engine that serves the variant (PyTorch
eager for fp32, ONNX Runtime for the others), the engine's default threads
(recorded). After the optimize stage measured them once, every variant of a model is
measured again in ``--rounds`` interleaved rounds and its quietest round is reported
(the stage's own one-pass figures are kept in the JSON as ``stage_measured``): on a
shared machine a load spike then hits all variants alike. ``--reuse`` measures the
runs an earlier invocation trained. Targets (a 2-core CPU): the CNN's int8 >= 2x faster than
fp32 eager at batch 1, <= 30% of its size, <= 1 point accuracy lost; resnet18 pruned
50% cuts FLOPs >= 40% and latency >= 30% (against its fp32 ONNX, the same engine), <= 2
points lost; the distilled student >= 3x faster than its teacher (both on ONNX
Runtime), <= 2 points lost. The CPU's flags are printed and written with the figures:
int8 speed depends on VNNI / AMX. The script exits 0 whether or not targets are met.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

BENCH = Path(__file__).resolve().parent
OUT = BENCH / "out" / "optimize"
KEYS = ("model", "variant", "engine", "metric", "metric_drop", "size_mb", "size_ratio",
        "latency_p50_ms", "latency_p95_ms", "speedup_vs_fp32_eager", "throughput_b64",
        "flops_ratio")


def _optimize(variants: list[str], runs: int, epochs: int, **extra: Any) -> dict[str, Any]:
    return {"variants": variants, "latency_runs": runs, "throughput_runs": 5,
            "prune": {"ratio": 0.5, "finetune_epochs": max(1, epochs // 2)},
            "distill": {"student": "auto", "temperature": 4.0, "alpha": 0.7,
                        "epochs": epochs * 2}, **extra}


def image_run(name: str, model: str, folder: Path, variants: list[str], args) -> Any:
    import launchml

    cfg = {"name": name, "output_dir": str(OUT / "runs"), "seed": 0,
           "data": {"train": str(folder / "train"), "test": str(folder / "test"),
                    "target_size": [150, 150]},
           "model": {"name": model}, "train": {"epochs": args.epochs, "batch_size": 32},
           "optimize": _optimize(variants, args.runs, args.epochs)}
    return launchml.run(cfg, overwrite=True, stages=["prepare", "train", "optimize"])


def table_run(args) -> Any:
    from sklearn.datasets import load_breast_cancer

    import launchml

    df = load_breast_cancer(as_frame=True).frame.sample(frac=1.0, random_state=0)
    OUT.mkdir(parents=True, exist_ok=True)
    df.iloc[:450].to_csv(OUT / "cancer_train.csv", index=False)
    df.iloc[450:].to_csv(OUT / "cancer_test.csv", index=False)
    cfg = {"name": "table", "output_dir": str(OUT / "runs"), "seed": 0,
           "data": {"train": str(OUT / "cancer_train.csv"),
                    "test": str(OUT / "cancer_test.csv"), "target": "target"},
           "model": {"name": "auto", "families": ["lightgbm", "linear", "mlp"]},
           "optimize": _optimize(["onnx", "int8", "distilled"], args.runs, args.epochs)}
    return launchml.run(cfg, overwrite=True, stages=["prepare", "train", "optimize"])


def torchao_predictor(run_dir: Path) -> Any:
    """The CNN with torchao's int8 (dynamic activations, int8 weights: its dense layers;
    convolutions stay fp32) on eager PyTorch; None when torchao is not importable."""
    try:
        from torchao.quantization import Int8DynamicActivationInt8WeightConfig, quantize_
    except ImportError:
        return None
    from launchml.deploy.predictor import Predictor

    predictor = Predictor.load(run_dir / "model", engine="torch")
    quantize_(predictor._model.members[0].net, Int8DynamicActivationInt8WeightConfig())
    return predictor


def torchao_row(predictor: Any, x: dict[str, np.ndarray], y: np.ndarray) -> dict[str, Any]:
    import io

    import torch

    acc = predictor.task.metrics(y, predictor.logits(x), predictor.package.threshold)
    buf = io.BytesIO()
    torch.save(predictor._model.members[0].net.state_dict(), buf)
    return {"variant": "int8_torchao", "engine": "torch+torchao",
            "metric": round(acc["accuracy"], 6), "size_bytes": buf.getbuffer().nbytes,
            "flops_ratio": 1.0, "method": "torchao Int8DynamicActivationInt8WeightConfig "
            "(dense layers; convolutions stay fp32)"}


def pin_threads(predictors: Any, n: int) -> None:
    """Every engine on ``n`` intra-op threads: PyTorch's setting, and each ONNX Runtime
    session opened again with ``intra_op_num_threads=n`` (on an oversubscribed machine
    two spinning threads per engine measure the load, not the engine)."""
    import onnxruntime as ort
    import torch

    torch.set_num_threads(n)
    options = ort.SessionOptions()
    options.intra_op_num_threads = n
    for p in predictors:
        for member in p._model.members:
            if hasattr(member, "session"):
                member.session = ort.InferenceSession(
                    member.session._model_path, options, providers=["CPUExecutionProvider"])


def remeasure(run_dir: Path, rows: list[dict[str, Any]], rounds: int, calls: int,
              extra: dict[str, Any], threads: int | None = None
              ) -> dict[str, dict[str, float]]:
    """Latency and throughput of every variant again, in interleaved rounds (round r
    times each variant in turn), each variant's quietest round kept: on a shared machine
    a load spike then hits every variant alike instead of the one being measured."""
    from launchml.data import load_prepared
    from launchml.data.schema import split_arrays
    from launchml.deploy.predictor import Predictor
    from launchml.runs import RunDir

    x, _ = split_arrays(load_prepared(RunDir(run_dir)), "test")
    one = {k: np.asarray(v[:1]) for k, v in x.items()}
    batch = {k: np.asarray(v[np.arange(64) % len(v)]) for k, v in x.items()}
    served = {r["variant"]: Predictor.load(run_dir / "model" if i == 0 else
                                           run_dir / "variants" / r["variant"],
                                           engine="torch" if i == 0 else r["engine"])
              for i, r in enumerate(rows) if "error" not in r}
    served.update(extra)
    if threads:
        pin_threads(served.values(), threads)
    best: dict[str, dict[str, float]] = {}
    for _ in range(rounds):
        for name, p in served.items():
            for _ in range(2):  # warm-up
                p.logits(one)
            times = []
            for _ in range(calls):
                t0 = time.perf_counter()
                p.logits(one)
                times.append((time.perf_counter() - t0) * 1000)
            t0 = time.perf_counter()
            p.logits(batch)
            tput = 64 / (time.perf_counter() - t0)
            p50, p95 = np.percentile(times, [50, 95])
            old = best.get(name)
            if old is None or p50 < old["latency_p50_ms"]:
                best[name] = {"latency_p50_ms": round(float(p50), 3),
                              "latency_p95_ms": round(float(p95), 3)}
            best[name]["throughput_b64"] = max(round(tput, 1),
                                               best[name].get("throughput_b64", 0.0))
    return best


def rows_of(model: str, run_dir: Path, args: Any, torchao: bool = False
            ) -> list[dict[str, Any]]:
    summary = json.loads((run_dir / "variants" / "summary.json").read_text())
    rows = summary["rows"]
    extra: dict[str, Any] = {}
    extra_rows = []
    if torchao:
        p = torchao_predictor(run_dir)
        if p is not None:
            from launchml.data import load_prepared
            from launchml.data.schema import split_arrays
            from launchml.runs import RunDir

            extra["int8_torchao"] = p
            extra_rows.append(torchao_row(p, *split_arrays(load_prepared(RunDir(run_dir)),
                                                           "test")))
    again = remeasure(run_dir, rows, args.rounds, args.runs, extra, args.threads)
    base = {**rows[0], **again[rows[0]["variant"]]}
    out = []
    for r in [*rows, *extra_rows]:
        if "error" in r:
            out.append({"model": model, "variant": r["variant"], "error": r["error"]})
            continue
        stage = {k: r.get(k) for k in ("latency_p50_ms", "latency_p95_ms", "throughput_b64")}
        r = {**r, **again[r["variant"]]}
        row = {**{k: r.get(k) for k in KEYS}, "model": model,
               "variant": r["variant"], "engine": r.get("engine")}
        row["metric_drop"] = round(base["metric"] - r["metric"], 6)
        row["size_mb"] = round(r["size_bytes"] / 1e6, 3)
        row["size_ratio"] = round(r["size_bytes"] / base["size_bytes"], 4)
        row["speedup_vs_fp32_eager"] = round(base["latency_p50_ms"] / r["latency_p50_ms"], 3)
        row["stage_measured"] = stage  # the optimize stage's own figures (one pass)
        for k in ("params", "peak_memory_mb", "threads", "method", "gain_kept",
                  "direct_metric"):
            if r.get(k) is not None:
                row[k] = r[k]
        if args.threads:
            row["threads"] = args.threads
        out.append(row)
    return out


def targets(rows: list[dict[str, Any]]) -> list[str]:
    def get(model: str, variant: str) -> dict[str, Any] | None:
        return next((r for r in rows if r["model"] == model and r["variant"] == variant
                     and "error" not in r), None)

    lines = []

    def check(what: str, ok: bool | None, detail: str) -> None:
        lines.append(f"{'MET ' if ok else 'MISS' if ok is not None else 'n/a '} {what}: "
                     f"{detail}")

    q = get("seed_cnn", "int8")
    if q:
        check("seed_cnn int8 >= 2x fp32 eager, <= 30% size, <= 1 point lost",
              q["speedup_vs_fp32_eager"] >= 2 and q["size_ratio"] <= 0.30
              and q["metric_drop"] <= 0.01,
              f"{q['speedup_vs_fp32_eager']:.2f}x, {q['size_ratio']:.0%} size, "
              f"{q['metric_drop'] * 100:+.1f} points lost")
    p, o = get("resnet18", "pruned"), get("resnet18", "onnx")
    if p and o:
        cut = 1 - p["latency_p50_ms"] / o["latency_p50_ms"]
        check("resnet18 pruned 50%: FLOPs -40%, latency -30% (vs its fp32 ONNX), <= 2 "
              "points lost", (p.get("flops_ratio") or 1) <= 0.6 and cut >= 0.3
              and p["metric_drop"] <= 0.02,
              f"FLOPs x{p.get('flops_ratio')}, latency {-cut:+.0%}, "
              f"{p['metric_drop'] * 100:+.1f} points lost")
    d, t = get("seed_cnn", "distilled"), get("seed_cnn", "onnx")
    if d and t:
        sp = t["latency_p50_ms"] / d["latency_p50_ms"]
        check("distilled student >= 3x its teacher (both ONNX Runtime), <= 2 points lost",
              sp >= 3 and d["metric_drop"] <= 0.02,
              f"{sp:.2f}x, {d['metric_drop'] * 100:+.1f} points lost")
    return lines


def print_table(rows: list[dict[str, Any]]) -> None:
    head = (f"{'model':9s} {'variant':13s} {'engine':14s} {'metric':>7s} {'drop':>6s} "
            f"{'MB':>7s} {'xsize':>6s} {'p50 ms':>8s} {'p95 ms':>8s} {'x eager':>8s} "
            f"{'rows/s':>8s} {'xFLOPs':>6s}")
    print(head)
    for r in rows:
        if "error" in r:
            print(f"{r['model']:9s} {r['variant']:13s} not built: {r['error'][:90]}")
            continue
        fr = r.get("flops_ratio")
        print(f"{r['model']:9s} {r['variant']:13s} {str(r['engine']):14s} "
              f"{r['metric']:7.4f} {r['metric_drop']:+6.3f} {r['size_mb']:7.2f} "
              f"{r['size_ratio']:6.2f} {r['latency_p50_ms']:8.2f} {r['latency_p95_ms']:8.2f} "
              f"{r['speedup_vs_fp32_eager']:8.2f} {r.get('throughput_b64') or 0:8.0f} "
              f"{'-' if fr is None else f'{fr:.2f}':>6s}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--small", action="store_true", help="80/40 images, 1 epoch")
    ap.add_argument("--epochs", type=int, default=None)
    ap.add_argument("--runs", type=int, default=20, help="timed batch-1 calls per variant "
                    "and round")
    ap.add_argument("--rounds", type=int, default=3, help="interleaved measuring rounds; "
                    "each variant's quietest round is reported")
    ap.add_argument("--threads", type=int, default=None, help="measure every engine on "
                    "this many threads (default: each engine's own default)")
    ap.add_argument("--reuse", action="store_true", help="measure the runs an earlier "
                    "invocation left in bench/out/optimize/runs instead of training again")
    ap.add_argument("--only", default="seed_cnn,resnet18,table")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    args.epochs = args.epochs or (1 if args.small else 4)
    only = set(args.only.split(","))
    import os

    os.environ.setdefault("LAUNCHML_QUIET", "1")
    from launchml.data.samples import write_shapes_folder
    from launchml.optimize.measure import cpu_info

    cpu = cpu_info()
    print(f"CPU: {cpu['cpu_model']} ({cpu['cpu_count']} logical cores); torch capability "
          f"{cpu.get('torch_cpu_capability')}; flags: {', '.join(cpu['cpu_flags'])}")
    folder = OUT / ("shapes-small" if args.small else "shapes")
    if not folder.exists():
        n_train, n_test = (40, 20) if args.small else (120, 40)
        write_shapes_folder(folder, n_train=n_train, n_test=n_test)
    rows: list[dict[str, Any]] = []
    seconds: dict[str, float] = {}
    runs = OUT / "runs"
    plan = [("seed_cnn", lambda: image_run("seed_cnn", "seed_cnn", folder,
                                           ["onnx", "int8", "pruned", "distilled"], args)),
            ("resnet18", lambda: image_run("resnet18", "timm:resnet18", folder,
                                           ["onnx", "int8", "pruned"], args)),
            ("table", lambda: table_run(args))]
    for name, build in plan:
        if name not in only:
            continue
        t0 = time.perf_counter()
        if not (args.reuse and (runs / name / "variants" / "summary.json").exists()):
            build()
        rows += rows_of(name, runs / name, args, torchao=name == "seed_cnn")
        seconds[name] = round(time.perf_counter() - t0, 1)
    print_table(rows)
    checks = targets(rows)
    print("\n".join(checks))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({
            **cpu, "small": args.small, "epochs": args.epochs, "latency_runs": args.runs,
            "rounds": args.rounds, "warmup": 2, "load_average": os.getloadavg(),
            "threads": args.threads or "engine default",
            "seconds": seconds, "targets": checks, "rows": rows}, indent=1))
        print(f"wrote {args.json}")


if __name__ == "__main__":
    sys.exit(main())
