"""Tables end to end: a real CSV through the CLI, the Python API and the server."""

from __future__ import annotations

import json

import numpy as np
import pytest
import yaml
from fastapi.testclient import TestClient
from tests.e2e.test_cli import cli

import launchml
from launchml.deploy.server import create_app


@pytest.fixture(scope="module")
def credit(tmp_path_factory):
    """breast_cancer as a CSV with a text target, plus rows to score."""
    from sklearn.datasets import load_breast_cancer

    root = tmp_path_factory.mktemp("table")
    frame = load_breast_cancer(as_frame=True).frame
    frame["diagnosis"] = np.where(frame.pop("target") == 1, "benign", "malignant")
    frame.to_csv(root / "bc.csv", index=False)
    frame.drop(columns=["diagnosis"]).head(7).to_csv(root / "new.csv", index=False)
    cfg = yaml.safe_load(cli("init", "tabular").stdout)
    cfg.update(name="bc", output_dir=str(root / "runs"))
    cfg["data"].update(train=str(root / "bc.csv"), target="diagnosis")
    (root / "bc.yaml").write_text(yaml.safe_dump(cfg))
    cli("run", str(root / "bc.yaml"))
    return root


def test_csv_run_predict_and_package(credit):
    run = credit / "runs" / "bc"
    metrics = json.loads((run / "evaluation" / "metrics.json").read_text())
    assert metrics["split"] == "test" and metrics["accuracy"] >= 0.9 and "roc_auc" in metrics
    meta = json.loads((run / "model" / "package.json").read_text())
    assert meta["source"] == "table" and meta["model"]["name"] == "auto"
    board = json.loads((run / "leaderboard.json").read_text())
    assert {r["family"] for r in board} >= {"lightgbm", "linear", "mlp"}
    for member in meta["model"]["members"]:  # every member's files are in the package
        assert all((run / "model" / f).exists() for f in member["files"].values())
    assert meta["preprocessing"]["mean radius"]["type"] == "number"
    out = cli("predict", str(run / "model"), str(credit / "new.csv")).stdout
    rows = [json.loads(x) for x in out.splitlines()]
    assert [r["row"] for r in rows] == list(range(7))
    assert all(r["label"] in ("benign", "malignant") for r in rows)


def test_server_takes_records_and_names_missing_fields(credit):
    import pandas as pd

    client = TestClient(create_app(launchml.load(credit / "runs" / "bc" / "model")))
    record = pd.read_csv(credit / "new.csv").iloc[0].to_dict()
    r = client.post("/v1/predict", json={"records": [record]})
    assert r.status_code == 200 and r.json()["predictions"][0]["label"] in ("benign",
                                                                             "malignant")
    del record["mean area"]
    r = client.post("/v1/predict", json={"records": [record]})
    assert r.status_code == 422 and "'mean area'" in r.json()["error"]
    r = client.post("/v1/predict", json={"records": [{**record, "mean area": "big",
                                                      "mean texture": 1}]})
    assert r.status_code == 422 and "column 'mean area' (number)" in r.json()["error"]
    assert client.post("/v1/predict", json={"rows": []}).status_code == 422


def test_regression_through_the_python_api(tmp_path):
    from sklearn.datasets import load_diabetes

    frame = load_diabetes(as_frame=True).frame
    frame.to_parquet(tmp_path / "diabetes.parquet")
    run = launchml.run({"name": "diabetes", "output_dir": str(tmp_path / "runs"),
                        "data": {"train": str(tmp_path / "diabetes.parquet"),
                                 "target": "target", "test_split": 0.2}})
    assert run.metrics["r2"] > 0.25 and run.metrics["rmse"] > 0
    value = run.predictor.predict_rows(frame.drop(columns=["target"]).head(2))
    assert set(value[0]) == {"input", "value"}


def test_table_bad_inputs(tmp_path):
    p = tmp_path / "t.csv"
    p.write_text("a,b,y\n1,2,x\n3,4,\n5,6,z\n")
    with pytest.raises(launchml.DataError, match="without a target"):
        launchml.run({"name": "t", "output_dir": str(tmp_path),
                      "data": {"train": str(p), "target": "y"}})
    with pytest.raises(launchml.DataError, match="no target column 'label'"):
        launchml.run({"name": "t", "output_dir": str(tmp_path),
                      "data": {"train": str(p), "target": "label"}})
