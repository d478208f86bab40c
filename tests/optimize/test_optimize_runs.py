"""The optimize stage end to end: a table and an image run, the CLI, the pick deployed
into the package, and the served answers of the picked variant."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient
from sklearn.datasets import load_breast_cancer

import launchml
from launchml.deploy.server import create_app


def _served_accuracy(model_dir, test_csv) -> float:
    """Accuracy of the answers `launchml serve` gives (the server app) for a test file."""
    frame = pd.read_csv(test_csv)
    client = TestClient(create_app(launchml.load(model_dir)))
    body = frame.drop(columns="target").to_csv(index=False)
    r = client.post("/v1/predict", content=body, headers={"content-type": "text/csv"})
    assert r.status_code == 200, r.text
    labels = [p["label"] for p in r.json()["predictions"]]
    return float(np.mean(np.asarray(labels) == frame["target"].astype(str).to_numpy()))


@pytest.mark.slow
def test_table_variants_blocked_pruning_distilled_lightgbm_and_served_pick(tmp_path):
    df = load_breast_cancer(as_frame=True).frame
    df.iloc[:420].to_csv(tmp_path / "train.csv", index=False)
    df.iloc[420:].to_csv(tmp_path / "test.csv", index=False)
    run = launchml.run({
        "name": "bc", "output_dir": str(tmp_path / "runs"), "seed": 0,
        "data": {"train": str(tmp_path / "train.csv"), "test": str(tmp_path / "test.csv"),
                 "target": "target"},
        # hidden: [] is one dense layer, the output layer: nothing to prune
        "model": {"name": "mlp", "mlp": {"hidden": []}}, "train": {"epochs": 8},
        "optimize": {"variants": ["int8", "pruned", "distilled"], "latency_runs": 2,
                     "throughput_runs": 1, "memory": False,
                     "pick": {"by": "metric", "max_accuracy_drop": 0.05}}})
    summary = json.loads((run.dir.variants / "summary.json").read_text())
    rows = {r["variant"]: r for r in summary["rows"]}
    assert list(rows) == ["pytorch", "int8", "pruned", "distilled"]
    # one blocked variant names its layer; the stage went on with the others
    assert "layer 'head.0' (Linear)" in rows["pruned"]["error"]
    assert rows["pruned"]["rejected"].startswith("not built: nothing to prune")
    assert rows["int8"]["method"] == "int8 static"  # an MLP: calibrated ranges
    assert rows["int8"]["calibration_rows"] == 128
    # the table's model distilled into one LightGBM; how much of its gain it keeps
    d = rows["distilled"]
    assert d["engine"] == "lightgbm" and d["student"] == "lightgbm"
    assert {"direct_metric", "teacher_metric", "gain_kept"} <= set(d)
    for r in (rows["pytorch"], rows["int8"], d):
        assert r["metric_name"] == "accuracy" and 0.8 < r["metric"] <= 1
        assert r["latency_p50_ms"] > 0 and r["throughput_b64"] > 0 and "peak_memory_mb" not in r
    # the pick is recorded with its row, and serving runs it
    meta = json.loads((run.model_dir / "package.json").read_text())
    picked = summary["picked"]
    assert meta["picked"]["variant"] == picked and meta["picked"]["row"]["picked"] is True
    assert launchml.load(run.model_dir).variant == (None if picked == "pytorch" else picked)
    served = _served_accuracy(run.model_dir, tmp_path / "test.csv")
    assert served == pytest.approx(rows[picked]["metric"], abs=1e-6)  # rounded to 6 places
    # the trained model is still there for engine='torch'
    assert launchml.load(run.model_dir, engine="torch").variant is None


def _cli(*args: str) -> subprocess.CompletedProcess:
    proc = subprocess.run([sys.executable, "-m", "launchml", *args], capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


@pytest.mark.slow
def test_cli_optimize_picks_int8_and_the_server_reproduces_its_accuracy(digits_run, tmp_path):
    run = tmp_path / "digits"
    shutil.copytree(digits_run.dir.root, run)
    _cli("optimize", str(run), "--set", "optimize.variants=[int8,pruned]",
         "--set", "optimize.prune={ratio: 0.2, finetune_epochs: 1}",
         "--set", "optimize.pick={by: size_mb, max_accuracy_drop: null}",
         "--set", "optimize.latency_runs=2")
    summary = json.loads((run / "variants" / "summary.json").read_text())
    rows = {r["variant"]: r for r in summary["rows"]}
    assert summary["picked"] == "int8"
    assert rows["pruned"]["params"] < rows["pytorch"]["params"]
    assert rows["pruned"]["flops_ratio"] < 0.8
    meta = json.loads((run / "model" / "package.json").read_text())
    assert meta["files"]["picked"] == "model.int8.onnx"
    assert meta["picked"]["engine"] == "onnx" and meta["picked"]["row"]["variant"] == "int8"
    predictor = launchml.load(run / "model")
    assert (predictor.variant, predictor.engine) == ("int8", "onnx")
    # the server answers with the int8 graph, and its accuracy is the table's
    client = TestClient(create_app(predictor))
    files = sorted(Path(digits_run.config.data.test).rglob("*.png"))
    right = 0
    for s in range(0, len(files), 64):
        part = files[s:s + 64]
        r = client.post("/v1/predict", files=[("file", (f"{f.parent.name}/{f.name}",
                                                        f.read_bytes(), "image/png"))
                                              for f in part])
        assert r.status_code == 200, r.text
        right += sum(p["label"] == f.parent.name
                     for p, f in zip(r.json()["predictions"], part, strict=True))
    assert len(files) == 359
    assert right / len(files) == pytest.approx(rows["int8"]["metric"], abs=1e-6)
    listed = _cli("optimize", str(run), "--list").stdout
    assert "int8" in listed and "pruned" in listed and "picked: int8" in listed
