"""Accuracy vs privacy: DP-SGD at epsilon 1, 3, 8 and none, and federated learning
(10 clients, IID and Dirichlet 0.5) vs centralized with the same total epochs, on
real data that ships offline: scikit-learn's digits as images (seed_cnn), or the
wine table (mlp). One run, wall times; every figure with the CPU's capabilities.

    python bench/privacy.py --dataset digits --json bench/out/privacy_digits.json
    python bench/privacy.py --dataset wine --json bench/out/privacy_wine.json

The federated runs go through ``launchml federate simulate`` (Flower in
.venv-federated: make install-federated). Targets (issue 13): federated IID within 2
points of centralized, Dirichlet 0.5 within 5; DP at epsilon 8 within 5 points of no
DP on digits.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

os.environ.setdefault("LAUNCHML_QUIET", "1")


def cpu_info() -> dict:
    import torch

    flags = set()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                flags = set(line.split(":", 1)[1].split())
                break
    except OSError:
        pass
    wanted = ["avx2", "avx512f", "avx512_vnni", "avx512_bf16", "amx_bf16", "amx_tile"]
    return {"capability": torch.backends.cpu.get_cpu_capability(),
            "flags": [f for f in wanted if f in flags], "cores": os.cpu_count(),
            "load_1min": os.getloadavg()[0]}


def base_config(dataset: str, root: Path, epochs: int) -> dict:
    if dataset == "digits":
        from launchml.data.samples import write_digits_folder

        d = write_digits_folder(root / "digits")
        return {"name": "c", "output_dir": str(root / "runs"), "seed": 0,
                "data": {"train": str(d / "train"), "test": str(d / "test"),
                         "target_size": [24, 24], "color_mode": "grayscale"},
                "model": {"name": "seed_cnn"},
                "train": {"epochs": epochs, "batch_size": 64, "learning_rate": 0.003},
                "optimize": {"onnx": False, "int8": False},
                "evaluate": {"report": False}}
    from sklearn.datasets import load_wine

    frame = load_wine(as_frame=True).frame
    frame["target"] = frame["target"].map({0: "barolo", 1: "grignolino", 2: "barbera"})
    frame.to_csv(root / "wine.csv", index=False)
    return {"name": "c", "output_dir": str(root / "runs"), "seed": 0,
            "data": {"train": str(root / "wine.csv"), "target": "target"},
            "model": {"name": "mlp", "refit": False},
            "train": {"epochs": epochs, "batch_size": 16, "learning_rate": 0.01,
                      "patience": None},
            "optimize": {"onnx": False, "int8": False}, "evaluate": {"report": False}}


# DP-SGD's usual settings (Abadi et al. 2016; De et al. 2022; the Opacus examples):
# large logical batches (Poisson-sampled), more epochs, SGD with momentum at a higher
# rate, clipping at 1, GroupNorm (the BatchNorm layers are replaced). The plain
# optimizer settings would take few, very noisy steps.
DP_TRAIN = {"digits": {"batch_size": 256, "epochs": 30, "optimizer": "sgd", "momentum": 0.9,
                       "learning_rate": 0.1},
            "wine": {}}


def central(cfg: dict, name: str, dp: dict | None = None, dp_train: dict | None = None
            ) -> dict:
    import launchml

    cfg = {**cfg, "name": name, **({"privacy": {"dp": dp}} if dp else {})}
    if dp and dp_train:
        cfg["train"] = {**cfg["train"], **dp_train}
    t0 = time.perf_counter()
    run = launchml.run(cfg, stages=["prepare", "train", "evaluate"])
    return {"accuracy": round(float(run.metrics["accuracy"]), 4),
            "seconds": round(time.perf_counter() - t0, 2)}


def federated(cfg: dict, root: Path, partition: str, clients: int, rounds: int) -> dict:
    name = "fed-" + partition.replace(":", "")
    local = max(1, cfg["train"]["epochs"] // rounds)
    conf = {**cfg, "name": name,
            "federated": {"rounds": rounds, "strategy": "fedavg", "min_clients": clients,
                          "local_epochs": local}}
    path = root / f"{name}.yaml"
    path.write_text(yaml.safe_dump(conf))
    cli = Path(sys.executable).parent / "launchml"
    t0 = time.perf_counter()
    proc = subprocess.run([str(cli), "federate", "simulate", str(path), "--clients",
                           str(clients), "--partition", partition],
                          capture_output=True, text=True)
    seconds = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"federate simulate failed:\n{proc.stderr[-3000:]}")
    metrics = json.loads((root / "runs" / name / "evaluation" / "metrics.json").read_text())
    return {"partition": partition, "clients": clients, "rounds": rounds,
            "local_epochs": local, "accuracy": round(float(metrics["accuracy"]), 4),
            "seconds": round(seconds, 2)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dataset", choices=["digits", "wine"], default="digits")
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--clients", type=int, default=10)
    ap.add_argument("--rounds", type=int, default=10)
    ap.add_argument("--epsilons", default="1,3,8")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        cfg = base_config(args.dataset, root, args.epochs)
        out = {"dataset": args.dataset, "cpu": cpu_info(), "epochs": args.epochs}
        out["centralized"] = central(cfg, "central")
        print(f"centralized: {out['centralized']}", flush=True)
        out["dp"] = [{"epsilon": None, **out["centralized"]}]
        for eps in (float(e) for e in args.epsilons.split(",")):
            r = central(cfg, f"dp{eps:g}", {"target_epsilon": eps, "max_grad_norm": 1.0},
                        DP_TRAIN[args.dataset])
            out["dp"].append({"epsilon": eps, "train": DP_TRAIN[args.dataset], **r})
            print(f"dp epsilon {eps:g}: {r}", flush=True)
        out["federated"] = []
        for partition in ("iid", "dirichlet:0.5"):
            r = federated(cfg, root, partition, args.clients, args.rounds)
            out["federated"].append(r)
            print(f"federated {partition}: {r}", flush=True)
    base = out["centralized"]["accuracy"]
    for r in out["dp"][1:]:
        print(f"  dp eps {r['epsilon']:g}: {r['accuracy'] - base:+.3f} vs no DP")
    for r in out["federated"]:
        print(f"  federated {r['partition']}: {r['accuracy'] - base:+.3f} vs centralized")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
