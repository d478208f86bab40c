"""A package without a neural member (LightGBM on wine): the optimize stage writes an
empty variants table that says why, and `launchml optimize --list` prints the reason
instead of asking for the stage that already ran."""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

import launchml
from launchml.cli.main import app

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def wine_csv(tmp_path_factory):
    from sklearn.datasets import load_wine

    frame = load_wine(as_frame=True).frame
    frame["cultivar"] = np.array(["barolo", "grignolino", "barbera"])[frame.pop("target")]
    path = tmp_path_factory.mktemp("wine") / "wine.csv"
    frame.to_csv(path, index=False)
    return path


@pytest.mark.slow
def test_lightgbm_run_records_why_it_has_no_variants(wine_csv, tmp_path):
    run = launchml.run({"name": "wine", "output_dir": str(tmp_path),
                        "data": {"train": str(wine_csv), "target": "cultivar",
                                 "test_split": 0.25},
                        "model": {"name": "lightgbm"}},
                       stages=["prepare", "train", "optimize", "deploy"])
    summary_path = run.dir.variants / "summary.json"
    summary = json.loads(summary_path.read_text())
    assert summary["rows"] == [] and summary["picked"] is None
    assert summary["reason"].startswith("no neural member (this package serves lightgbm)")
    assert "onnx, int8" in summary["reason"]
    meta = json.loads((run.dir.model / "package.json").read_text())
    assert "picked" not in meta and "variants" not in meta["metrics"]

    result = CliRunner().invoke(app, ["optimize", str(run.dir.root), "--list"])
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())  # rich wraps long lines
    assert "no variants: no neural member" in text
    assert "variants need a network" in text
    assert "Fix: launchml optimize" not in text  # not: run the stage that already ran


def test_list_prints_the_reason_of_an_empty_table(tmp_path):
    # what the stage writes for a package without a neural member (no training needed)
    (tmp_path / "variants").mkdir()
    reason = ("no neural member (this package serves linear): LightGBM and linear members "
              "serve through their own predictors; variants need a network")
    (tmp_path / "variants" / "summary.json").write_text(json.dumps(
        {"version": 2, "split": "test", "picked": None, "reason": reason, "rows": []}))
    result = CliRunner().invoke(app, ["optimize", str(tmp_path), "--list"])
    assert result.exit_code == 0, result.output
    assert " ".join(result.output.split()) == f"no variants: {reason}"
