"""`launchml evaluate <package> --data <labelled data> --out <folder>/metrics.json` writes
the HTML report a run's evaluate stage writes (evaluate/report.py, on the new rows) and
MODEL_CARD.md beside the metrics, and says where."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
from typer.testing import CliRunner

import launchml
from launchml.cli.main import app


def _cli(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


def _sections(html: str) -> set[str]:
    return set(re.findall(r'<section id="([a-z]+)"', html))


@pytest.fixture(scope="module")
def cancer(tmp_path_factory):
    """A linear model of breast_cancer trained on 400 rows; the other 169 are new data."""
    from sklearn.datasets import load_breast_cancer

    root = tmp_path_factory.mktemp("cancer")
    frame = load_breast_cancer(as_frame=True).frame
    frame["target"] = np.array(["malignant", "benign"])[frame["target"]]
    frame = frame.sample(frac=1.0, random_state=0)
    frame.iloc[:400].to_csv(root / "train.csv", index=False)
    frame.iloc[400:].to_csv(root / "new.csv", index=False)
    run = launchml.run({"name": "cancer", "output_dir": str(root / "runs"),
                        "data": {"train": str(root / "train.csv"), "target": "target"},
                        "model": {"name": "linear"}}, stages=["prepare", "train"])
    return run.model_dir, root / "new.csv"


@pytest.mark.slow  # the fixture's training and the report: about 14 s on 2 cores
def test_evaluate_cli_writes_the_report_beside_the_metrics(cancer, tmp_path):
    model, new = cancer
    out = tmp_path / "scored" / "metrics.json"
    result = _cli("evaluate", model, "--data", new, "--out", out)
    assert result.exit_code == 0, result.output
    report = out.with_name("report.html")
    assert f"report: {report}" in result.stdout
    metrics = json.loads(out.read_text())
    html = report.read_text()
    assert "<script" not in html.lower()
    assert {"summary", "classes", "curves", "gallery", "importance", "card"} <= \
        _sections(html)
    # the headline is the new rows' accuracy, on the split named after the data
    assert metrics["n"] == 169 and f"{metrics['accuracy']:.4f}" in html
    assert "new.csv (169 rows)" in html
    assert "baseline: majority class of the scored rows" in html
    card = out.with_name("MODEL_CARD.md").read_text()
    assert "accuracy on the new.csv split" in card and "## Limitations" in card

    quiet = tmp_path / "plain" / "metrics.json"
    result = _cli("evaluate", model, "--data", new, "--out", quiet, "--no-report")
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in quiet.parent.iterdir()) == ["metrics.json"]
    assert "report:" not in result.stdout


@pytest.mark.slow
def test_evaluate_package_reports_an_image_package_on_a_class_folder(digits_dir, tmp_path):
    run = launchml.run({"name": "digits", "output_dir": str(tmp_path / "runs"), "seed": 0,
                        "data": {"train": str(digits_dir / "train"),
                                 "target_size": [24, 24], "color_mode": "grayscale"},
                        "model": {"name": "seed_cnn"},
                        "train": {"epochs": 1, "batch_size": 64}},
                       stages=["prepare", "train"])
    from launchml.evaluate import evaluate_package

    report = tmp_path / "new" / "report.html"
    metrics = evaluate_package(run.model_dir, digits_dir / "test", report=report)
    html = report.read_text()
    n = sum(1 for _ in (digits_dir / "test").rglob("*.png"))
    assert metrics["n"] == n and f"test ({n} rows)" in html
    assert f"{metrics['accuracy']:.4f}" in html
    # the package sits in its run folder: the report adds the run's learning curves
    assert {"summary", "classes", "gallery", "learning", "explained"} <= _sections(html)
    assert html.count("data:image/png;base64") >= 3  # charts and mistaken digits, inline
    assert (tmp_path / "new" / "MODEL_CARD.md").exists()
