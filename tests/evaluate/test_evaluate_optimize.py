from __future__ import annotations

import json

import numpy as np
import pytest

from launchml.tasks import create_task
from launchml.tasks.classification import classification_metrics


def test_metrics_json_and_confusion_png(digits_run):
    m = json.loads((digits_run.dir.evaluation / "metrics.json").read_text())
    assert m["split"] == "test" and m["n"] == 359
    assert 0.8 < m["accuracy"] <= 1
    assert set(m["per_class"]) == {str(i) for i in range(10)}
    assert {"precision_macro", "recall_macro", "f1_macro", "roc_auc_ovr_macro"} <= set(m)
    assert np.asarray(m["confusion_matrix"]).sum() == 359
    png = digits_run.dir.evaluation / "plots" / "confusion_matrix.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_binary_metrics_have_roc_auc():
    task = create_task("binary", ["neg", "pos"])
    y = np.array([0, 0, 1, 1])
    probs = task.probabilities(np.array([[-2.0], [0.5], [1.0], [3.0]]))
    m = classification_metrics(task, y, probs)
    assert m["accuracy"] == 0.75 and m["roc_auc"] == 1.0
    assert m["per_class"]["neg"]["recall"] == 0.5


def test_two_class_categorical_has_roc_auc():
    task = create_task("multiclass", ["a", "b"])
    probs = task.probabilities(np.array([[1.0, 0.0], [0.0, 2.0], [0.5, 0.0], [0.0, 1.0]]))
    m = classification_metrics(task, np.array([0, 1, 0, 1]), probs)
    assert m["roc_auc"] == 1.0 and m["accuracy"] == 1.0


def test_softmax_matches_the_corrected_article_example():
    probs = create_task("multiclass", list("abc")).probabilities(np.array([[2.0, 1.0, 0.5]]))
    assert probs[0] == pytest.approx([0.629, 0.231, 0.140], abs=1e-3)


def test_optimize_variants_are_measured_packages(digits_run):
    summary = json.loads((digits_run.dir.variants / "summary.json").read_text())
    table = {r["variant"]: r for r in summary["rows"]}
    assert list(table) == ["pytorch", "onnx", "int8"]
    assert table["onnx"]["max_abs_diff"] < 1e-3
    assert table["int8"]["size_bytes"] < 0.4 * table["onnx"]["size_bytes"]
    assert table["int8"]["method"] == "int8 static"  # a convolutional network: calibrated
    for row in table.values():
        assert row["latency_ms_batch1"] > 0 and 0 <= row["accuracy"] <= 1
        assert row["latency_p95_ms"] >= row["latency_p50_ms"] > 0
        assert row["throughput_b64"] > 0 and row["peak_memory_mb"] > 0
        assert row["params"] > 0 and row["flops_ratio"] == 1.0
        assert row["threads"] >= 1 and row["repeats"] == 2 and row["warmup"] == 3
    assert abs(table["int8"]["accuracy"] - table["pytorch"]["accuracy"]) < 0.05
    assert summary["metric"] == "accuracy" and summary["split"] == "test"
    assert summary["picked"] in table and "cpu_flags" in summary
    for name in ("onnx", "int8"):
        meta = json.loads((digits_run.dir.variants / name / "package.json").read_text())
        assert meta["files"] == {"weights": None, "onnx": "model.onnx"}
