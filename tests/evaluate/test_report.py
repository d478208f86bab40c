"""The evaluation report and model card: what each kind of run shows, and the optional
sections (optimized variants, privacy) read from hand-written fixtures."""

from __future__ import annotations

import json
import re
import shutil

import numpy as np
import pandas as pd
import pytest

import launchml
from launchml.runs import RunDir


def _table_run(tmp_path_factory, name, df, model="lightgbm", **data):
    path = tmp_path_factory.mktemp(name) / f"{name}.csv"
    df.to_csv(path, index=False)
    cfg = {"name": name, "output_dir": str(tmp_path_factory.mktemp("runs")), "seed": 0,
           "data": {"train": str(path), "target": "label", **data},
           "model": {"name": model}, "optimize": {"onnx": False, "int8": False}}
    return launchml.run(cfg)


@pytest.fixture(scope="module")
def binary_run(tmp_path_factory):
    rng = np.random.default_rng(0)
    n = 400
    df = pd.DataFrame({"income": rng.normal(50, 10, n).round(2),
                       "plan": rng.choice(["basic", "pro", "team"], n),
                       "noise": rng.normal(size=n).round(3)})
    df["label"] = np.where(df.income + (df.plan == "pro") * 8 + rng.normal(0, 4, n) > 52,
                           "yes", "no")
    return _table_run(tmp_path_factory, "credit", df)


@pytest.fixture(scope="module")
def regression_run(tmp_path_factory):
    rng = np.random.default_rng(1)
    n = 300
    df = pd.DataFrame({"area": rng.uniform(20, 200, n).round(1),
                       "city": rng.choice(["a", "b"], n)})
    df["label"] = (df.area * 3 + (df.city == "a") * 50 + rng.normal(0, 10, n)).round(2)
    return _table_run(tmp_path_factory, "houses", df)


def _sections(html: str) -> set[str]:
    return set(re.findall(r'<section id="([a-z]+)"', html))


def _self_contained(html: str) -> None:
    # no script, no external resource: every src is inline data
    assert "<script" not in html.lower()
    assert not re.search(r'(src|href)="(?!data:|#)', html)
    assert "http://" not in html and "https://" not in html


def test_binary_table_report_has_every_section(binary_run):
    html = (binary_run.dir.evaluation / "report.html").read_text()
    _self_contained(html)
    assert {"summary", "classes", "curves", "data", "slices", "gallery", "leaderboard",
            "importance", "explained", "card"} <= _sections(html)
    m = json.loads((binary_run.dir.evaluation / "metrics.json").read_text())
    assert f"{m['accuracy']:.4f}" in html  # the headline metric
    assert "95% interval (bootstrap)" in html and "baseline: majority class" in html
    assert "calibration" in html and "Expected calibration error" in html
    assert "served threshold" in html or "threshold analysis" in html
    # slices per value of the category column, worst first
    slices = html[html.index('id="slices"'):html.index('id="gallery"')]
    for value in ("basic", "pro", "team"):
        assert f"<td>{value}</td>" in slices
    assert "tree_shap" in html and "permutation importance" in html
    card = (binary_run.dir.evaluation / "MODEL_CARD.md").read_text()
    for heading in ("## Intended use", "## Data", "## Metrics", "## Limitations",
                    "## Privacy"):
        assert heading in card
    assert "95% bootstrap interval" in card and "income" in card


def test_regression_report_plots_predicted_vs_actual(regression_run):
    html = (regression_run.dir.evaluation / "report.html").read_text()
    _self_contained(html)
    assert {"summary", "regression", "slices", "importance"} <= _sections(html)
    assert "mean predictor" in html and "rmse" in html
    assert 'alt="predicted vs actual"' in html


def test_image_report_shows_images_and_overlays(digits_run):
    html = (digits_run.dir.evaluation / "report.html").read_text()
    _self_contained(html)
    assert {"summary", "classes", "curves", "learning", "data", "gallery",
            "explained"} <= _sections(html)
    assert html.count('class="overlay"') >= 4  # IG, Grad-CAM and HiResCAM per example
    assert "integrated_gradients" in html and "grad_cam" in html
    assert 'alt="learning curves"' in html


def test_optional_variants_and_privacy_sections(binary_run, tmp_path):
    from launchml.data import load_prepared
    from launchml.data.schema import split_arrays
    from launchml.evaluate.report import write_report

    run = RunDir(tmp_path / "copy")
    shutil.copytree(binary_run.dir.root, run.root)
    (run.variants).mkdir(exist_ok=True)
    (run.variants / "summary.json").write_text(json.dumps({
        "rows": [{"variant": "fp32", "engine": "torch", "metric": 0.91, "metric_drop": 0.0,
                  "size_mb": 4.2, "latency_p50_ms": 1.9},
                 {"variant": "int8", "engine": "onnx", "metric": 0.905, "metric_drop": 0.005,
                  "size_mb": 1.1, "latency_p50_ms": 0.7}], "picked": "int8"}))
    meta = json.loads((run.model / "package.json").read_text())
    pred = launchml.load(run.model)
    pred.package.meta["privacy"] = {"dp": {"epsilon": 3.0, "delta": 1e-5,
                                           "max_grad_norm": 1.0}}
    prepared = load_prepared(run)
    x, _ = split_arrays(prepared, "test")
    metrics = json.loads((run.evaluation / "metrics.json").read_text())
    write_report(run, pred, prepared, "test", metrics, pred.logits(x))
    html = (run.evaluation / "report.html").read_text()
    assert {"variants", "privacy"} <= _sections(html)
    variants = html[html.index('id="variants"'):]
    assert "Picked for serving: <b>int8</b>" in variants and "latency_p50_ms" in variants
    assert "dp.epsilon" in html
    card = (run.evaluation / "MODEL_CARD.md").read_text()
    assert "- dp.epsilon: 3.0" in card and "served: int8" in card
    assert "privacy" not in meta  # the package itself was not changed


def test_no_optional_sections_without_their_files(binary_run):
    html = (binary_run.dir.evaluation / "report.html").read_text()
    assert not {"variants", "privacy"} & _sections(html)
    assert "trained without differential privacy" in html


def test_report_can_be_turned_off(binary_run, tmp_path):
    from launchml.config import RunConfig

    cfg = RunConfig.load(binary_run.dir.config).with_overrides(
        ["evaluate.report=false", f"output_dir={tmp_path}"])
    shutil.copytree(binary_run.dir.root, tmp_path / binary_run.dir.root.name)
    (tmp_path / binary_run.dir.root.name / "evaluation" / "report.html").unlink()
    run = launchml.run(cfg, stages=["evaluate"])
    assert (run.dir.evaluation / "metrics.json").exists()
    assert not (run.dir.evaluation / "report.html").exists()


def test_a_section_that_fails_is_named_not_fatal(binary_run, tmp_path, monkeypatch):
    from launchml.data import load_prepared
    from launchml.data.schema import split_arrays
    from launchml.evaluate.report import Report

    def broken(self):
        raise ValueError("no slices today")

    monkeypatch.setattr(Report, "_slices", broken)
    pred = launchml.load(binary_run.dir.model)
    prepared = load_prepared(binary_run.dir)
    x, _ = split_arrays(prepared, "test")
    report = Report(binary_run.dir, pred, prepared, "test", {}, pred.logits(x)).build()
    html = report.html()
    assert 'id="error-slices"' in html and "no slices today" in html
    assert 'id="summary"' in html and 'id="slices"' not in html


def test_bootstrap_interval_covers_the_metric():
    from launchml.evaluate.report import bootstrap

    hits = (np.random.default_rng(0).uniform(size=2000) < 0.8) * 1.0
    lo, hi = bootstrap(hits, False)
    assert lo < hits.mean() < hi and 0.76 < lo < hi < 0.84
    sq = np.random.default_rng(1).normal(size=500) ** 2
    lo, hi = bootstrap(sq, True)
    assert lo < np.sqrt(sq.mean()) < hi
