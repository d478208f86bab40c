"""One pipeline for every input kind: an image folder goes through the same families,
selection, package and predictor as a table; the config says what a run did."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import yaml
from fastapi.testclient import TestClient

import launchml
from launchml.config import RunConfig
from launchml.deploy.server import create_app
from tests.conftest import digits_config


def _table(tmp_path, n=120):
    rng = np.random.default_rng(0)
    df = pd.DataFrame({"income": rng.normal(50, 10, n).round(2),
                       "plan": rng.choice(["basic", "pro"], n),
                       "joined": pd.date_range("2023-01-01", periods=n, freq="D").astype(str)})
    df["label"] = np.where(df.income + (df.plan == "pro") * 5 > 52, "yes", "no")
    path = tmp_path / "t.csv"
    df.to_csv(path, index=False)
    return path


def test_auto_on_an_image_folder_uses_the_shared_selection(digits_dir, tmp_path):
    cfg = digits_config(digits_dir, tmp_path, epochs=1)
    cfg["model"] = {"name": "auto"}
    run = launchml.run(cfg, stages=["prepare", "train"])
    board = json.loads((run.dir.root / "leaderboard.json").read_text())
    assert [r["family"] for r in board] == ["seed_cnn"]
    assert board[0]["validation_loss"] > 0 and "accuracy" in board[0]
    meta = run.predictor.package.meta
    assert meta["model"]["name"] == "auto"
    assert [m["family"] for m in meta["model"]["members"]] == ["seed_cnn"]
    files = sorted((digits_dir / "test" / "2").glob("*.png"))[:3]
    assert len(run.predictor.predict_rows(files)) == 3


def test_image_and_table_packages_have_one_shape(digits_run, tmp_path):
    table = launchml.fit(_table(tmp_path), target="label", model="linear",
                         output_dir=str(tmp_path / "runs"))
    for meta in (digits_run.predictor.package.meta, table.predictor.package.meta):
        assert meta["format_version"] == 2
        assert {"family", "weight"} <= set(meta["model"]["members"][0])
        assert all(s["type"] for s in meta["preprocessing"].values())


def test_openapi_request_body_follows_the_input_schema(digits_run, tmp_path):
    image_api = TestClient(create_app(digits_run.predictor)).get("/openapi.json").json()
    body = image_api["paths"]["/v1/predict"]["post"]["requestBody"]["content"]
    assert "multipart/form-data" in body
    table = launchml.fit(_table(tmp_path), target="label", model="linear",
                         output_dir=str(tmp_path / "runs"))
    client = TestClient(create_app(table.predictor))
    api = client.get("/openapi.json").json()
    body = api["paths"]["/v1/predict"]["post"]["requestBody"]["content"]
    assert list(body) == ["application/json"]  # no image upload for a table model
    record = body["application/json"]["schema"]["properties"]["records"]["items"]
    assert record["properties"]["income"]["type"] == "number"
    assert record["properties"]["plan"]["type"] == "string"
    assert set(record["required"]) == {"income", "plan", "joined"}
    assert client.get("/healthz").json()["engine"] == "linear"


def test_saved_config_is_the_run_and_set_changes_nothing_else(tmp_path):
    """A table's neural member trained 100 epochs in a plain run and 10 with any --set,
    while both saved the same config: the kind's defaults are now in the config."""
    data = {"name": "c", "output_dir": str(tmp_path), "data": {"train": "t.csv",
                                                               "target": "y"}}
    plain = RunConfig.load(data)
    assert plain.train.epochs == 100 and plain.train.optimizer == "adamw"
    assert plain.train.patience == 10 and plain.model.refit is True
    assert plain.with_overrides(["evaluate.split=auto"]) == plain
    saved = tmp_path / "config.yaml"
    plain.save(saved)
    assert RunConfig.load(saved) == plain
    assert yaml.safe_load(saved.read_text())["train"]["batch_size"] == 128
    # the user's value wins, and images keep the article's defaults
    assert RunConfig.load({**data, "train": {"epochs": 3}}).train.epochs == 3
    image = RunConfig.load({"name": "i", "data": {"train": "folder"}})
    assert image.train.epochs == 10 and image.model.refit is False
    assert image.model.threshold == "none"


def test_a_table_run_with_and_without_an_irrelevant_set_trains_identically(tmp_path):
    path = _table(tmp_path)
    cfg = {"name": "a", "output_dir": str(tmp_path / "runs"), "seed": 1,
           "data": {"train": str(path), "target": "label"},
           "model": {"name": "mlp", "hidden": [8]}, "optimize": {"onnx": False,
                                                                 "int8": False}}
    a = launchml.run(cfg, stages=["prepare", "train"])
    b_cfg = RunConfig.load({**cfg, "name": "b"}).with_overrides(["evaluate.split=auto"])
    b = launchml.run(b_cfg, stages=["prepare", "train"])
    board_a = json.loads((a.dir.root / "leaderboard.json").read_text())
    board_b = json.loads((b.dir.root / "leaderboard.json").read_text())
    assert board_a[0]["best_epoch"] == board_b[0]["best_epoch"]
    assert board_a[0]["validation_loss"] == board_b[0]["validation_loss"]
    ya, yb = (yaml.safe_load(r.dir.config.read_text()) for r in (a, b))
    assert ya["train"] == yb["train"] and ya["train"]["epochs"] == 100


def test_python_api_one_shape_per_call(digits_run, tmp_path):
    """predict: labels (or values); predict_proba: a frame; predict_rows: both; the
    run's predictor is loaded once; leaderboard() on the run and the predictor."""
    import matplotlib

    backend = matplotlib.get_backend()
    predictor = digits_run.predictor
    assert digits_run.predictor is predictor  # cached
    labels_run = launchml.fit(_table(tmp_path), target="label", model="linear",
                              output_dir=str(tmp_path / "runs"))
    x = pd.read_csv(tmp_path / "t.csv").drop(columns="label").head(5)
    labels = labels_run.predictor.predict(x)
    assert len(labels) == 5 and set(labels) <= {"yes", "no"}
    proba = labels_run.predictor.predict_proba(x)
    assert list(proba.columns) == ["no", "yes"] and proba.shape == (5, 2)
    assert np.allclose(proba.sum(axis=1), 1.0)
    t = labels_run.predictor.package.threshold or 0.5  # tuned on validation for tables
    assert [("yes" if p >= t else "no") for p in proba["yes"]] == labels
    rows = labels_run.predictor.predict_rows(x)
    assert [r["label"] for r in rows] == labels
    assert list(labels_run.leaderboard()["family"]) == ["linear"]
    assert list(labels_run.predictor.leaderboard()["family"]) == ["linear"]
    reg = launchml.fit(pd.read_csv(tmp_path / "t.csv").assign(y=lambda d: d.income * 2),
                       target="y", model="linear", output_dir=str(tmp_path / "runs"))
    values = reg.predictor.predict(x.assign(label="no"))
    assert all(isinstance(v, float) for v in values)
    assert matplotlib.get_backend() == backend  # evaluate drew its plot without pyplot


def test_package_json_is_typed_and_unknown_fields_are_refused(digits_run, tmp_path):
    import shutil

    from launchml.errors import PackageError

    for change, named in [
        (lambda m: m["preprocessing"]["image"].update(sharpen=2.0), "preprocessing.image"),
        (lambda m: m.update(signature="x"), "signature"),
        (lambda m: m["preprocessing"]["image"].update(rescale="a lot"), "rescale"),
        (lambda m: m["task"].update(name="ranking"), "task.name"),
    ]:
        bad = tmp_path / f"bad-{named}"
        shutil.copytree(digits_run.dir.model, bad)
        meta = json.loads((bad / "package.json").read_text())
        change(meta)
        (bad / "package.json").write_text(json.dumps(meta))
        try:
            launchml.load(bad)
        except PackageError as e:
            assert named in str(e) and "pip install -U launchml" in str(e)
        else:
            raise AssertionError(f"{named}: a malformed package loaded")
