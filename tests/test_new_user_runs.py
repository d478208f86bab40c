"""What a new user hit with runs, configs and the estimators: each fixed, each tried here."""

from __future__ import annotations

import logging
import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import yaml
from sklearn.exceptions import NotFittedError

import launchml
from launchml.config import RunConfig
from tests.conftest import digits_config


def _csv(tmp_path, n=80):
    rng = np.random.default_rng(0)
    df = pd.DataFrame({"x": rng.normal(size=n), "z": rng.normal(size=n)})
    df["y"] = np.where(df.x + 0.3 * df.z > 0, "a", "b")
    path = tmp_path / "t.csv"
    df.to_csv(path, index=False)
    return path, df


def test_classifier_is_quiet_by_default_and_verbose_on_request(tmp_path, caplog, capsys,
                                                               monkeypatch):
    monkeypatch.setenv("LAUNCHML_QUIET", "0")  # a user's shell: progress is on by default
    _, df = _csv(tmp_path)
    X, y = df[["x", "z"]], df[["y"]].to_numpy()  # a column vector y, as sklearn accepts
    with caplog.at_level(logging.INFO, logger="launchml"):
        clf = launchml.Classifier(model="linear").fit(X, y)
    assert capsys.readouterr().err == ""  # 416 lines per cross-validation once
    assert any("leaderboard" in r.getMessage() for r in caplog.records)  # still logged
    assert clf.score(X, y.ravel()) > 0.8
    launchml.Classifier(model="linear", verbose=1).fit(X, y.ravel())
    assert "leaderboard" in capsys.readouterr().err
    with pytest.raises(NotFittedError):
        launchml.Classifier().predict(X)


def test_set_with_a_value_that_is_not_yaml_is_one_line(tmp_path):
    path, _ = _csv(tmp_path)
    cfg = tmp_path / "c.yaml"
    cfg.write_text(yaml.safe_dump({"name": "c", "output_dir": str(tmp_path / "runs"),
                                   "data": {"train": "t.csv", "target": "y"}}))
    proc = subprocess.run([sys.executable, "-m", "launchml", "run", str(cfg), "--set",
                           "data.delimiter=,"], capture_output=True, text=True,
                          env={**os.environ, "LAUNCHML_QUIET": "1"}, timeout=300)
    assert proc.returncode == 2
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert "data.delimiter" in proc.stderr and "quote it" in proc.stderr
    assert not (tmp_path / "runs").exists()


def test_relative_paths_are_read_from_the_config_files_folder(tmp_path, monkeypatch):
    project = tmp_path / "project"
    project.mkdir()
    _csv(project)
    cfg = project / "c.yaml"
    cfg.write_text(yaml.safe_dump({"name": "c", "output_dir": str(tmp_path / "runs"),
                                   "data": {"train": "t.csv", "target": "y"},
                                   "model": {"name": "linear"}}))
    monkeypatch.chdir(tmp_path)  # elsewhere: 't.csv' is not here
    run = launchml.run(RunConfig.load(cfg), stages=["prepare", "train"])
    saved = yaml.safe_load(run.dir.config.read_text())
    assert saved["data"]["train"] == str(project / "t.csv")


def test_a_refused_run_leaves_no_folder_behind(tmp_path):
    path, df = _csv(tmp_path)
    df.drop(columns="y").to_csv(path, index=False)  # no target column
    with pytest.raises(launchml.DataError, match="no target column 'y'"):
        launchml.run({"name": "bad", "output_dir": str(tmp_path / "runs"),
                      "data": {"train": str(path), "target": "y"}})
    assert not (tmp_path / "runs" / "bad").exists()


def test_refused_resume_changes_nothing_and_evaluate_checks_the_data(digits_dir, tmp_path):
    cfg = digits_config(digits_dir, tmp_path, epochs=1)
    run = launchml.run(cfg, stages=["prepare", "train"])
    before = {p.name: p.stat().st_mtime_ns for p in run.dir.prepared.iterdir()}
    changed = {**cfg, "data": {**cfg["data"], "target_size": [28, 28]}}
    with pytest.raises(launchml.RunError, match=r"data.target_size: \[24, 24\] -> \[28, 28\]"):
        launchml.run(changed, stages=["prepare", "train"], resume=True)
    assert {p.name: p.stat().st_mtime_ns for p in run.dir.prepared.iterdir()} == before
    # evaluate alone with another test folder would score the old one: refused
    other = {**cfg, "data": {**cfg["data"], "test": str(digits_dir / "train")}}
    with pytest.raises(launchml.RunError, match="data.test"):
        launchml.run(other, stages=["evaluate"])
    # prepared again with other settings, then evaluate: the package no longer matches
    launchml.run(changed, stages=["prepare"])
    with pytest.raises(launchml.RunError, match="not the data the model"):
        launchml.run(changed, stages=["evaluate"])


def test_a_member_worse_than_the_constant_baseline_is_reported(tmp_path):
    from launchml.tasks import create_task
    from launchml.train.select import baseline_loss

    task = create_task("binary", ["a", "b"])
    y_train, y_valid = np.array([0, 0, 0, 1]), np.array([0, 1])
    assert baseline_loss(task, y_train, y_valid) == pytest.approx(
        -(np.log(0.75) + np.log(0.25)) / 2)
    path, _ = _csv(tmp_path, n=120)
    run = launchml.run({"name": "b", "output_dir": str(tmp_path / "runs"), "seed": 0,
                        "data": {"train": str(path), "target": "y"},
                        "model": {"name": "mlp", "hidden": [8]},
                        "train": {"epochs": 2, "learning_rate": 1000.0, "optimizer": "sgd",
                                  "momentum": 0.0}}, stages=["prepare", "train"])
    board = yaml.safe_load((run.dir.root / "leaderboard.json").read_text())
    assert board[0]["below_baseline"] is True


def test_scores_without_a_test_split_are_marked_optimistic(digits_dir, tmp_path):
    cfg = digits_config(digits_dir, tmp_path, epochs=1)
    cfg["data"] = {k: v for k, v in cfg["data"].items() if k != "test"}
    cfg["data"]["test_split"] = 0.0
    run = launchml.run({**cfg, "optimize": {"onnx": False, "int8": False}},
                       stages=["prepare", "train", "evaluate"])
    assert run.metrics["split"] == "validation" and run.metrics["optimistic"] is True


def test_keys_that_cannot_apply_are_errors_and_dropout_zero_is_zero(tmp_path):
    image = {"name": "i", "data": {"train": "folder"}}
    with pytest.raises(launchml.ConfigError, match=r"model.mlp.lora \(the table combiner"):
        RunConfig.load({**image, "model": {"lora": True}})  # the old flat spelling too
    with pytest.raises(launchml.ConfigError, match=r"model.mlp.hidden"):
        RunConfig.load({**image, "model": {"mlp": {"hidden": [8]}}})
    with pytest.raises(launchml.ConfigError, match="train.augment"):
        RunConfig.load({"name": "t", "data": {"train": "t.csv", "target": "y"},
                        "model": {"name": "lightgbm"}, "train": {"augment": {"flip": True}}})
    table = RunConfig.load({"name": "t", "data": {"train": "t.csv", "target": "y"}})
    assert table.model.mlp.dropout == 0.1 and table.model.time_limit == 300
    assert table.model.network.dropout == 0.0  # each family's settings in its section
    legacy = RunConfig.load({"name": "t", "data": {"train": "t.csv", "target": "y"},
                             "model": {"name": "mlp", "hidden": [16], "dropout": 0.2,
                                       "pretrained": False}})
    assert legacy.model.mlp.hidden == [16] and legacy.model.mlp.dropout == 0.2
    dumped = legacy.model_dump(mode="json")["model"]
    assert "hidden" not in dumped and dumped["mlp"]["hidden"] == [16]
    assert RunConfig.load({"name": "i", "data": {"train": "folder"},
                           "model": {"name": "seed_cnn", "dropout": 0.5}}
                          ).model.network.dropout == 0.5
    zero = RunConfig.load({"name": "t", "data": {"train": "t.csv", "target": "y"},
                           "model": {"dropout": 0}})
    from launchml.models.table_net import TableNet

    net = TableNet({"numbers": ["x"], "categories": [], "encoders": []}, {}, zero.model.mlp, 2)
    assert not any(isinstance(m, __import__("torch").nn.Dropout) and m.p > 0
                   for m in net.modules())


def test_resume_with_overwrite_is_refused_before_anything_is_deleted(tmp_path):
    path, _ = _csv(tmp_path)
    cfg = {"name": "r", "output_dir": str(tmp_path / "runs"),
           "data": {"train": str(path), "target": "y"}, "model": {"name": "linear"}}
    launchml.run(cfg, stages=["prepare", "train"])
    with pytest.raises(launchml.ConfigError, match="exclude each other"):
        launchml.run(cfg, resume=True, overwrite=True)
    assert (tmp_path / "runs" / "r" / "model" / "package.json").exists()


def test_predicting_a_file_reads_it_as_training_read_it(tmp_path):
    """';' with values like '7,672' trained with data.decimal '.', so 7672: predicting
    on the same file must not guess a decimal comma (7.672)."""
    rng = np.random.default_rng(0)
    n = 120
    big = rng.integers(1000, 9999, n)
    df = pd.DataFrame({"amount": [f"{v // 1000},{v % 1000:03d}" for v in big],
                       "y": np.where(big > 5500, "hi", "lo")})
    path = tmp_path / "t.csv"
    df.to_csv(path, sep=";", index=False)
    run = launchml.run({"name": "d", "output_dir": str(tmp_path / "runs"),
                        "data": {"train": str(path), "target": "y", "decimal": ".",
                                 "test_split": 0.0},
                        "model": {"name": "lightgbm"}}, stages=["prepare", "train"])
    from_file = run.predictor.predict(path)
    from_frame = run.predictor.predict(pd.read_csv(path, sep=";", thousands=",",
                                                   dtype={"amount": str}).drop(columns="y"))
    assert from_file == from_frame
    assert np.mean(np.array(from_file) == df["y"].to_numpy()) > 0.9


def test_help_has_no_type_noise_and_a_zip_error_names_the_zip(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "launchml", "run", "--help"],
                          capture_output=True, text=True, timeout=120)
    assert "--resume" in proc.stdout and "<bool>" not in proc.stdout
    import zipfile

    bad = tmp_path / "model.zip"
    with zipfile.ZipFile(bad, "w") as zf:
        zf.writestr("package.json", "{not json")
    with pytest.raises(launchml.PackageError) as err:
        launchml.load(bad)
    assert str(bad) in str(err.value) and "launchml-package-" not in str(err.value)


def test_the_table_server_takes_a_csv_body(tmp_path):
    from fastapi.testclient import TestClient

    from launchml.deploy.server import create_app

    path, df = _csv(tmp_path)
    run = launchml.run({"name": "s", "output_dir": str(tmp_path / "runs"),
                        "data": {"train": str(path), "target": "y"},
                        "model": {"name": "linear"}}, stages=["prepare", "train"])
    client = TestClient(create_app(run.predictor))
    body = df.drop(columns="y").head(3).to_csv(index=False)
    r = client.post("/v1/predict", content=body, headers={"content-type": "text/csv"})
    assert r.status_code == 200
    assert [p["label"] for p in r.json()["predictions"]] == run.predictor.predict(
        df.drop(columns="y").head(3))
    r = client.post("/v1/predict", content="x,z\n", headers={"content-type": "text/csv"})
    assert r.status_code == 422 and "no rows" in r.json()["error"]
    r = client.post("/v1/predict", content=body, headers={"content-type": "text/plain"})
    assert r.status_code == 422 and "text/csv" in r.json()["error"]


def test_old_flat_model_keys_still_work_with_set_and_in_checkpoints():
    from launchml.train.trainer import resume_key, upgrade_resume_key

    image = RunConfig.load({"name": "x", "data": {"train": "imgs"},
                            "model": {"name": "timm:resnet18"}})
    changed = image.with_overrides(["model.pretrained=true", "model.dropout=0.5"])
    assert changed.model.network.pretrained is True and changed.model.network.dropout == 0.5
    table = RunConfig.load({"name": "t", "data": {"train": "t.csv", "target": "y"}})
    assert table.with_overrides(["model.hidden=[8]"]).model.mlp.hidden == [8]
    with pytest.raises(launchml.ConfigError, match="old spelling of model.mlp.dropout"):
        RunConfig.load({"name": "t", "data": {"train": "t.csv", "target": "y"},
                        "model": {"dropout": 0.3, "mlp": {"dropout": 0.2}}})
    # a checkpoint written with the flat keys resumes under the same settings
    now = resume_key(image.model_dump(mode="json"), "fp")
    old = {k: v for k, v in now.items() if not k.startswith(("model.mlp.", "model.network."))}
    old.update({"model.pretrained": False, "model.dropout": 0.0, "model.hidden": [256, 128],
                "model.text_encoder": "transformer", "model.text_dim": 128,
                "model.text_layers": 2, "model.lora": False, "model.lora_rank": 8,
                "model.image_encoder": "seed_cnn"})
    assert upgrade_resume_key(old, now) == now
    bigger = {**old, "model.dropout": 0.5}
    assert upgrade_resume_key(bigger, now)["model.network.dropout"] == 0.5  # a real change


def test_a_format_1_table_package_with_the_old_model_keys_loads(tmp_path):
    import json
    import shutil

    path, df = _csv(tmp_path)
    run = launchml.run({"name": "v1", "output_dir": str(tmp_path / "runs"),
                        "data": {"train": str(path), "target": "y"},
                        "model": {"name": "lightgbm"}}, stages=["prepare", "train"])
    old = tmp_path / "old"
    shutil.copytree(run.dir.model, old)
    meta = json.loads((old / "package.json").read_text())
    meta.update(format_version=1, data_kind="table",
                model={"name": "lightgbm", "pretrained": False, "dropout": 0.0})
    del meta["source"]
    (old / "package.json").write_text(json.dumps(meta))
    x = df.drop(columns="y").head(5)
    assert launchml.load(old).predict(x) == run.predictor.predict(x)


def test_the_csv_body_is_read_as_the_training_file_was(tmp_path):
    from fastapi.testclient import TestClient

    from launchml.deploy.server import create_app

    _, df = _csv(tmp_path)
    path = tmp_path / "eu.csv"
    df.assign(x=df.x.map(lambda v: f"{v:.4f}".replace(".", ","))).to_csv(path, sep=";",
                                                                         index=False)
    run = launchml.run({"name": "eu", "output_dir": str(tmp_path / "runs"),
                        "data": {"train": str(path), "target": "y"},
                        "model": {"name": "linear"}}, stages=["prepare", "train"])
    body = path.read_text().splitlines()
    csv_body = "\n".join([";".join(body[0].split(";")[:2]),
                          *(";".join(r.split(";")[:2]) for r in body[1:4])]) + "\n"
    client = TestClient(create_app(run.predictor))
    r = client.post("/v1/predict", content=csv_body, headers={"content-type": "text/csv"})
    assert r.status_code == 200, r.json()
    assert [p["label"] for p in r.json()["predictions"]] == run.predictor.predict(path)[:3]


def test_cli_help_lists_templates_and_table_training_speaks_of_rows(tmp_path, capsys,
                                                                     monkeypatch):
    proc = subprocess.run([sys.executable, "-m", "launchml", "init", "--help"],
                          capture_output=True, text=True, timeout=120)
    assert "image-classification" in proc.stdout and "tabular" in proc.stdout
    monkeypatch.setenv("LAUNCHML_QUIET", "0")
    path, _ = _csv(tmp_path)
    launchml.run({"name": "m", "output_dir": str(tmp_path / "runs"),
                  "data": {"train": str(path), "target": "y"},
                  "model": {"name": "mlp", "mlp": {"hidden": [4]}}, "train": {"epochs": 2}},
                 stages=["prepare", "train"])
    err = capsys.readouterr().err
    assert "rows/s" in err and "img/s" not in err and "1 threads" not in err
