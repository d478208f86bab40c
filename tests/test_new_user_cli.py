"""What a new user hit on the command line: no way to score a package on new labelled
data (``launchml evaluate``), one bad input aborting a whole ``predict``
(``--on-bad-input skip``), bad image files reported one split at a time, misleading
messages (a CSV as an image folder, a PNG beside the class folders), ``export x.tar.gz``
writing a zip, and Ctrl-C ending ``launchml run`` with a traceback."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from typer.testing import CliRunner

import launchml
from launchml import DataError, RunConfig
from launchml.cli.main import app
from launchml.data import prepare_image_folder
from launchml.deploy import predictor as predictor_module


def _cli(*args: str):
    return CliRunner().invoke(app, [str(a) for a in args])


def _table(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    df = pd.DataFrame({"x": rng.normal(size=n).round(4), "c": rng.choice(["a", "b"], n)})
    df["y"] = np.where(df["x"] + rng.normal(0, 0.3, n) > 0, "pos", "neg")
    return df


@pytest.fixture(scope="module")
def table_model(tmp_path_factory):
    """A linear binary classifier of 'y' from x (number) and c (category)."""
    root = tmp_path_factory.mktemp("table")
    _table(160, 0).to_csv(root / "train.csv", index=False)
    run = launchml.run({"name": "t", "output_dir": str(root / "runs"),
                        "data": {"train": str(root / "train.csv"), "target": "y"},
                        "model": {"name": "linear"}}, stages=["prepare", "train"])
    return run.model_dir


def _images(root: Path, spec: dict[str, int], seed: int = 0) -> Path:
    """Class folders of small PNGs: 'cats' dark, 'dogs' bright (easy to learn)."""
    rng = np.random.default_rng(seed)
    for cls, n in spec.items():
        (root / cls).mkdir(parents=True, exist_ok=True)
        level = 40 if cls == "cats" else 200
        for i in range(n):
            arr = np.clip(rng.normal(level, 20, size=(24, 24, 3)), 0, 255).astype(np.uint8)
            Image.fromarray(arr).save(root / cls / f"{i}.png")
    return root


@pytest.fixture(scope="module")
def image_model(tmp_path_factory):
    """A seed_cnn trained one epoch on 24x24 cats/dogs (prepare and train only)."""
    root = tmp_path_factory.mktemp("images")
    _images(root / "train", {"cats": 12, "dogs": 12})
    run = launchml.run({"name": "i", "output_dir": str(root / "runs"),
                        "data": {"train": str(root / "train"), "target_size": [24, 24],
                                 "validation_split": 0.25},
                        "model": {"name": "seed_cnn"}, "train": {"epochs": 1, "batch_size": 8}},
                       stages=["prepare", "train"])
    return run.model_dir


# --- 1. launchml evaluate <package> --data ... ------------------------------------------


def test_evaluate_scores_a_table_package_on_new_labelled_rows(table_model, tmp_path):
    new = _table(90, 1)
    data = tmp_path / "new.csv"
    new.to_csv(data, index=False)
    out = tmp_path / "metrics.json"
    result = _cli("evaluate", table_model, "--data", data, "--out", out)
    assert result.exit_code == 0, result.output
    assert "n=90" in result.stdout and "accuracy=" in result.stdout and "roc_auc=" in result.stdout
    written = json.loads(out.read_text())
    # the same scores the predictor's own predictions give, on the rows without 'y'
    rows = list(launchml.load(table_model).iter_predict(new.drop(columns=["y"])))
    expected = np.mean([r["label"] == y for r, y in zip(rows, new["y"], strict=True)])
    assert written["n"] == 90 and written["accuracy"] == pytest.approx(expected)
    assert sum(map(sum, written["confusion_matrix"])) == 90
    from launchml.evaluate import evaluate_package  # the same in Python

    assert evaluate_package(table_model, data)["accuracy"] == written["accuracy"]


def test_evaluate_regression_package_reports_rmse(tmp_path):
    rng = np.random.default_rng(0)
    df = pd.DataFrame({"x": rng.normal(size=200)})
    df["price"] = 3 * df["x"] + rng.normal(0, 0.1, 200)
    df.to_csv(tmp_path / "train.csv", index=False)
    run = launchml.run({"name": "r", "output_dir": str(tmp_path / "runs"),
                        "data": {"train": str(tmp_path / "train.csv"), "target": "price"},
                        "model": {"name": "linear"}}, stages=["prepare", "train"])
    df.head(50).to_csv(tmp_path / "new.csv", index=False)
    from launchml.evaluate import evaluate_package

    metrics = evaluate_package(run.predictor, tmp_path / "new.csv")
    assert metrics["n"] == 50 and metrics["rmse"] < 0.5 and metrics["r2"] > 0.9


def test_evaluate_errors_name_the_missing_target_unknown_class_and_data_kind(table_model,
                                                                            tmp_path):
    no_target = tmp_path / "rows.csv"
    _table(10, 2).drop(columns=["y"]).to_csv(no_target, index=False)
    result = _cli("evaluate", table_model, "--data", no_target)
    assert result.exit_code == 1 and "no target column 'y'" in result.output
    odd = tmp_path / "odd.csv"
    _table(10, 2).assign(y=["pos"] * 9 + ["maybe"]).to_csv(odd, index=False)
    result = _cli("evaluate", table_model, "--data", odd)
    assert result.exit_code == 1 and "['maybe']" in result.output
    result = _cli("evaluate", table_model, "--data", tmp_path)
    assert result.exit_code == 1 and "is a folder" in result.output
    assert "Traceback" not in result.output


def test_evaluate_scores_an_image_package_on_a_class_folder(image_model, tmp_path):
    data = _images(tmp_path / "new", {"cats": 5, "dogs": 4}, seed=3)
    out = tmp_path / "m.json"
    result = _cli("evaluate", image_model, "--data", data, "--out", out)
    assert result.exit_code == 0, result.output
    metrics = json.loads(out.read_text())
    predictor = launchml.load(image_model)
    files = sorted(str(f) for f in data.rglob("*.png"))
    rows = list(predictor.iter_predict(files))
    expected = np.mean([r["label"] == Path(f).parent.name
                        for r, f in zip(rows, files, strict=True)])
    assert metrics["n"] == 9 and metrics["accuracy"] == pytest.approx(expected)
    assert metrics["per_class"]["cats"]["support"] == 5
    # a class the model does not know is named; every bad file is listed in one error
    _images(data, {"birds": 1})
    result = _cli("evaluate", image_model, "--data", data)
    assert result.exit_code == 1 and "['birds']" in result.output
    (data / "birds" / "0.png").unlink()
    (data / "birds").rmdir()
    (data / "cats" / "x.png").write_bytes(b"junk")
    (data / "dogs" / "y.png").write_bytes(b"more junk")
    result = _cli("evaluate", image_model, "--data", data)
    assert result.exit_code == 1 and "2 image files cannot be read" in result.output
    assert "x.png" in result.output and "y.png" in result.output
    assert "on_bad_file" not in result.output  # not a setting of evaluate


# --- 2. predict --on-bad-input skip ------------------------------------------------------


def _with_bad_values(tmp_path: Path) -> tuple[Path, pd.DataFrame]:
    df = _table(7, 4).drop(columns=["y"]).astype({"x": object})
    df.loc[1, "x"] = "abc"
    df.loc[2, "x"] = "n/a?"
    df.loc[5, "x"] = "inf"
    path = tmp_path / "new.csv"
    df.to_csv(path, index=False)
    return path, df


def test_predict_skip_keeps_good_rows_and_gives_bad_rows_an_error(table_model, tmp_path,
                                                                   monkeypatch):
    monkeypatch.setattr(predictor_module, "TABLE_CHUNK", 4)  # bad rows in both chunks
    src, df = _with_bad_values(tmp_path)
    good = [0, 3, 4, 6]
    expected = list(launchml.load(table_model).iter_predict(df.loc[good].astype({"x": float})))
    result = _cli("predict", table_model, src)  # default: error, naming file and value
    assert result.exit_code == 1 and str(src) in result.output and "'abc'" in result.output
    result = _cli("predict", table_model, src, "--on-bad-input", "skip")
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert [r["row"] for r in rows] == list(range(7))
    assert [i for i, r in enumerate(rows) if "error" in r] == [1, 2, 5]
    assert "'abc'" in rows[1]["error"] and "not a finite number" in rows[5]["error"]
    assert set(rows[1]) == {"file", "row", "error"}
    for i, e in zip(good, expected, strict=True):
        assert rows[i]["label"] == e["label"]
        assert rows[i]["probabilities"] == pytest.approx(e["probabilities"])
    assert "3 of 7 inputs could not be scored" in result.output


@pytest.mark.parametrize("suffix", [".csv", ".parquet", ".jsonl"])
def test_predict_skip_scored_table_has_an_error_column(table_model, tmp_path, monkeypatch,
                                                        suffix):
    monkeypatch.setattr(predictor_module, "TABLE_CHUNK", 2)  # the first chunk is all bad
    src, df = _with_bad_values(tmp_path)
    df = df.drop(index=0).reset_index(drop=True)
    df.to_csv(src, index=False)
    out = tmp_path / f"scored{suffix}"
    result = _cli("predict", table_model, src, "--out", out)
    assert result.exit_code == 1 and not out.exists()
    result = _cli("predict", table_model, src, "--out", out, "--on-bad-input", "skip")
    assert result.exit_code == 0, result.output
    got = (pd.read_csv(out) if suffix == ".csv" else pd.read_parquet(out) if suffix == ".parquet"
           else pd.read_json(out, lines=True))
    got["error"] = got["error"].fillna("")  # CSV: an empty field reads as missing
    assert list(got.columns) == ["x", "c", "prediction", "probability_neg", "probability_pos",
                                 "error"]
    assert len(got) == 6 and got["c"].tolist() == df["c"].tolist()
    bad = [i for i, e in enumerate(got["error"]) if e]
    assert bad == [0, 1, 4] and "'abc'" in got["error"][0]
    assert all(got["prediction"][i] in ("pos", "neg") for i in (2, 3, 5))
    assert got["probability_pos"].isna().tolist() == [i in bad for i in range(6)]


def test_predict_skip_scores_the_good_images_around_a_bad_one(image_model, tmp_path):
    data = _images(tmp_path / "new", {"cats": 3, "dogs": 3}, seed=5)
    bad = data / "dogs" / "1b.png"  # sorts between good files of one batch
    bad.write_bytes(b"not an image")
    missing = tmp_path / "gone.png"
    good = [f for f in sorted(str(f) for f in data.rglob("*.png")) if f != str(bad)]
    expected = list(launchml.load(image_model).iter_predict(good))
    result = _cli("predict", image_model, data)  # default: error, naming the file
    assert result.exit_code == 1 and str(bad) in result.output
    result = _cli("predict", image_model, data, missing, "--on-bad-input", "skip")
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert [r["file"] for r in rows] == sorted([*good, str(bad)]) + [str(missing)]
    errors = {r["file"]: r["error"] for r in rows if "error" in r}
    assert set(errors) == {str(bad), str(missing)}
    assert "not a readable image" in errors[str(bad)] and "does not exist" in errors[str(missing)]
    scored = [r for r in rows if "error" not in r]
    assert [r["label"] for r in scored] == [e["label"] for e in expected]


def test_on_bad_input_takes_error_or_skip(table_model, tmp_path):
    result = _cli("predict", table_model, tmp_path / "x.csv", "--on-bad-input", "ignore")
    assert result.exit_code == 2 and "'error' or 'skip'" in result.output


# --- 3. on_bad_file: error lists the bad files of every split at once --------------------


def _prepare(tmp_path: Path, **data):
    cfg = RunConfig.load({"name": "r", "output_dir": str(tmp_path / "runs"),
                          "data": {"target_size": [16, 16], **data}})
    return prepare_image_folder(cfg.data, cfg.run_dir.mkdir(), cfg.seed)


def test_bad_files_in_train_and_test_folders_come_in_one_error(tmp_path):
    train = _images(tmp_path / "train", {"cats": 3, "dogs": 3})
    test = _images(tmp_path / "test", {"cats": 2, "dogs": 2})
    (train / "cats" / "bad.png").write_bytes(b"junk")
    (test / "dogs" / "worse.png").write_bytes(b"junk")
    with pytest.raises(DataError) as e:
        _prepare(tmp_path, train=str(train), test=str(test))
    msg = str(e.value)
    assert "2 image files cannot be read" in msg
    assert str(train / "cats" / "bad.png") in msg and str(test / "dogs" / "worse.png") in msg


# --- 4. smaller ones ---------------------------------------------------------------------


def test_a_csv_as_image_folder_says_it_is_a_file_and_tables_need_a_target(tmp_path):
    csv = tmp_path / "credit.csv"
    _table(10, 0).to_csv(csv, index=False)
    with pytest.raises(DataError) as e:
        _prepare(tmp_path, train=str(csv))
    msg = str(e.value)
    assert "is a file, not a folder" in msg and "data.target" in msg
    assert "does not exist" not in msg


def test_a_png_beside_the_class_folders_is_named_as_outside_a_class(tmp_path, capsys):
    train = _images(tmp_path / "train", {"cats": 3, "dogs": 3})
    Image.new("RGB", (24, 24)).save(train / "loose.png")
    (train / "cats" / "notes.txt").write_text("hi")
    _prepare(tmp_path, train=str(train), validation_split=0.0)
    err = capsys.readouterr().err
    assert "outside any class sub-folder" in err and "loose.png" in err
    assert "not images" not in err.split("loose.png")[0].splitlines()[-1]


def test_export_writes_a_compressed_zip_and_refuses_other_names(table_model, tmp_path):
    result = _cli("export", table_model, tmp_path / "model.tar.gz")
    assert result.exit_code == 2 and "model.zip" in result.output
    assert list(tmp_path.iterdir()) == []
    out = tmp_path / "model.zip"
    assert _cli("export", table_model, out).exit_code == 0
    with zipfile.ZipFile(out) as zf:
        assert {i.compress_type for i in zf.infolist()} == {zipfile.ZIP_DEFLATED}
    assert next(launchml.load(out).iter_predict([{"x": 1.0, "c": "a"}]))["label"] == "pos"


@pytest.mark.parametrize("checkpoint", [True, False])
def test_ctrl_c_prints_one_line_and_exits_130(tmp_path, monkeypatch, checkpoint):
    import launchml.pipeline

    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(f"name: r\noutput_dir: {tmp_path / 'runs'}\ndata: {{train: {tmp_path}}}\n")
    if checkpoint:
        (tmp_path / "runs" / "r" / "checkpoints").mkdir(parents=True)
        (tmp_path / "runs" / "r" / "checkpoints" / "last.ckpt").write_bytes(b"")

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(launchml.pipeline, "run", interrupted)
    result = _cli("train", cfg, "--set", "train.epochs=3")
    assert result.exit_code == 130
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("interrupted")
    if checkpoint:
        assert f"launchml train {cfg} --set train.epochs=3 --resume" in lines[0]
    else:
        assert "nothing to --resume" in lines[0]
