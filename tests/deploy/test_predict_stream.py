"""Large prediction tables: read in chunks (``iter_table``), scored in chunks, and written
by ``launchml predict MODEL table --out scored.csv|.parquet|.jsonl`` chunk by chunk."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

import launchml
from launchml.cli.main import app
from launchml.data import tables
from launchml.data.tables import iter_table, read_table
from launchml.deploy import predictor as predictor_module

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def scored(tmp_path_factory):
    """A LightGBM package trained on breast_cancer (text labels), and 30,000 rows to score."""
    from sklearn.datasets import load_breast_cancer

    root = tmp_path_factory.mktemp("stream")
    frame = load_breast_cancer(as_frame=True).frame
    frame["diagnosis"] = np.where(frame.pop("target") == 1, "benign", "malignant")
    frame.to_csv(root / "bc.csv", index=False)
    rng = np.random.default_rng(0)
    big = frame.drop(columns=["diagnosis"]).sample(30_000, replace=True, random_state=0)
    big = big * rng.uniform(0.95, 1.05, size=big.shape)  # not 53 copies of each row
    big.insert(0, "id", np.arange(len(big)))
    big.to_csv(root / "big.csv", index=False)
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1):
        run = launchml.run({"name": "bc", "output_dir": str(root / "runs"),
                            "data": {"train": str(root / "bc.csv"), "target": "diagnosis"},
                            "model": {"name": "lightgbm"}})
    return run.model_dir, root


def test_iter_table_reads_like_read_table_in_chunks(tmp_path, monkeypatch):
    text = "id;comment;stars\n" + "".join(
        f'{i};"Très bon; livraison\nrapide {i}";{i % 5}\n' for i in range(50))
    csv = tmp_path / "reviews.csv"
    csv.write_bytes(text.encode("cp1252"))  # sniffed: cp1252, ';', quoted newlines
    whole = read_table(csv)[0]
    jsonl = tmp_path / "t.jsonl"
    whole.to_json(jsonl, orient="records", lines=True, force_ascii=False)
    parquet = tmp_path / "t.parquet"
    whole.to_parquet(parquet)
    # never the whole file in memory: read_table's whole-file read is not used
    monkeypatch.setattr(Path, "read_bytes", lambda self: pytest.fail("read whole"))
    for path in (csv, jsonl, parquet):
        chunks = list(iter_table(path, chunk_rows=7))
        assert [len(c) for c in chunks] == [7] * 7 + [1]
        assert chunks[3].index[0] == 21  # rows numbered across chunks
        pd.testing.assert_frame_equal(pd.concat(chunks), whole)


def test_iter_table_errors_name_file_line_and_fix(tmp_path):
    ragged = tmp_path / "ragged.csv"
    ragged.write_text("a,b,c\n" + "1,2,3\n" * 20 + "4,5,6,7\n")
    chunks = iter_table(ragged, chunk_rows=5)
    assert len(next(chunks)) == 5  # the rows before the bad one are read
    with pytest.raises(launchml.DataError, match=r"ragged.csv.*line 22.*Fix"):
        list(chunks)
    latin = tmp_path / "latin.csv"  # the odd byte is far past the sniffed head
    latin.write_bytes(("name,n\n" + "Ana,1\n" * 60_000 + "José,2\n").encode("latin-1"))
    with pytest.raises(launchml.DataError, match=r"byte 360010 \(line 60002\) is not valid "
                                                 r"utf-8.*looks like cp1252"):
        iter_table(latin, encoding="utf-8")  # checked before any row is read
    assert list(iter_table(latin, chunk_rows=50_000))[-1]["name"].iloc[-1] == "José"
    bad_json = tmp_path / "b.jsonl"
    bad_json.write_text('{"a": 1}\n' * 3 + '{"a": 2,,}\n')
    with pytest.raises(launchml.DataError, match="line 4 is not valid JSON"):
        list(iter_table(bad_json, chunk_rows=2))
    header_only = tmp_path / "h.csv"
    header_only.write_text("a,b\n")
    with pytest.raises(launchml.DataError, match="has no rows"):
        list(iter_table(header_only))
    with pytest.raises(launchml.DataError, match="does not exist"):
        iter_table(tmp_path / "missing.csv")


def test_predictor_streams_a_file_with_running_row_numbers(scored, monkeypatch):
    model, root = scored
    chunks = []
    real = tables.iter_table

    def spy(*args, **kwargs):
        for chunk in real(*args, **kwargs):
            chunks.append(len(chunk))
            yield chunk

    monkeypatch.setattr(tables, "iter_table", spy)
    monkeypatch.setattr(predictor_module, "TABLE_CHUNK", 7_000)
    p = launchml.load(model)
    rows = p.predict_rows(root / "big.csv")
    assert chunks == [7_000] * 4 + [2_000]
    assert [r["input"] for r in rows] == list(range(30_000))
    head = pd.read_csv(root / "big.csv", nrows=9_000)
    assert p.predict_rows(head)[8_500] == {**rows[8_500], "input": 8_500}  # same as a DataFrame


def test_cli_writes_a_scored_csv_like_the_python_api(scored, tmp_path):
    """The real command in a subprocess: 30,000 rows, scored 4,096 at a time."""
    model, root = scored
    out = tmp_path / "scored.csv"
    proc = subprocess.run(
        [sys.executable, "-m", "launchml", "predict", str(model), str(root / "big.csv"),
         "--out", str(out)], capture_output=True, text=True, timeout=600,
        env={**os.environ, "LAUNCHML_QUIET": "1", "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == ""
    got = pd.read_csv(out)
    big = pd.read_csv(root / "big.csv")
    assert list(got.columns) == [*big.columns, "prediction", "probability_benign",
                                 "probability_malignant"]
    assert len(got) == 30_000 and got["id"].tolist() == list(range(30_000))
    np.testing.assert_allclose(got[big.columns].to_numpy(), big.to_numpy())
    rows = launchml.load(model).predict_rows(root / "big.csv")
    assert got["prediction"].tolist() == [r["label"] for r in rows]
    np.testing.assert_allclose(got["probability_malignant"],
                               [r["probabilities"]["malignant"] for r in rows])
    assert not [f for f in os.listdir(tmp_path) if f != "scored.csv"]  # no temp file left


@pytest.mark.parametrize("suffix", [".parquet", ".jsonl"])
def test_cli_writes_parquet_and_jsonl_in_chunks(scored, tmp_path, monkeypatch, suffix):
    model, root = scored
    monkeypatch.setattr(predictor_module, "TABLE_CHUNK", 2_500)
    src = tmp_path / "part.csv"
    part = pd.read_csv(root / "big.csv", nrows=6_000)
    part.to_csv(src, index=False)
    out = tmp_path / f"scored{suffix}"
    result = CliRunner().invoke(app, ["predict", str(model), str(src), "--out", str(out)])
    assert result.exit_code == 0, result.output
    got = pd.read_parquet(out) if suffix == ".parquet" else pd.read_json(out, lines=True)
    assert len(got) == 6_000 and got["id"].tolist() == list(range(6_000))
    rows = launchml.load(model).predict_rows(part)
    assert got["prediction"].tolist() == [r["label"] for r in rows]
    np.testing.assert_allclose(got["probability_benign"],
                               [r["probabilities"]["benign"] for r in rows])
    if suffix == ".parquet":
        import pyarrow.parquet as pq

        assert pq.ParquetFile(out).metadata.num_row_groups == 3  # one per chunk


def test_cli_stdout_and_other_out_names_keep_json_lines(scored, tmp_path):
    model, root = scored
    src = tmp_path / "few.csv"
    pd.read_csv(root / "big.csv", nrows=3).to_csv(src, index=False)
    result = CliRunner().invoke(app, ["predict", str(model), str(src)])
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert [r["row"] for r in rows] == [0, 1, 2] and rows[0]["file"] == str(src)
    out = tmp_path / "rows.json"
    assert CliRunner().invoke(app, ["predict", str(model), str(src), "--out",
                                    str(out)]).exit_code == 0
    assert [json.loads(line) for line in out.read_text().splitlines()] == rows


def test_a_failure_leaves_no_half_written_output(scored, tmp_path, monkeypatch):
    model, root = scored
    monkeypatch.setattr(predictor_module, "TABLE_CHUNK", 1_000)
    src = tmp_path / "bad.csv"
    part = pd.read_csv(root / "big.csv", nrows=3_000).astype({"mean area": object})
    part.loc[2_500, "mean area"] = "big"  # in the third chunk
    part.to_csv(src, index=False)
    out = tmp_path / "scored.csv"
    result = CliRunner().invoke(app, ["predict", str(model), str(src), "--out", str(out)])
    assert result.exit_code == 1 and "mean area" in result.output
    assert "2500" in result.output  # the row, counted across chunks
    assert os.listdir(tmp_path) == ["bad.csv"]
    clash = tmp_path / "clash.csv"
    part.head(3).assign(prediction=1).to_csv(clash, index=False)
    result = CliRunner().invoke(app, ["predict", str(model), str(clash), "--out", str(out)])
    assert result.exit_code == 1 and "already has column(s) ['prediction']" in result.output


def test_multilabel_and_regression_prediction_columns():
    from launchml.cli.predict import _scored

    chunk = pd.DataFrame({"text": ["a", "b"]}, index=pd.Index([10, 11], name="id"))
    rows = [{"labels": ["x", "z"], "probabilities": {"x": 0.9, "y": 0.1, "z": 0.7}},
            {"labels": [], "probabilities": {"x": 0.2, "y": 0.3, "z": 0.1}}]
    got = _scored(chunk, rows, ["x", "y", "z"], Path("t.csv"))
    assert got["prediction"].tolist() == ["x|z", ""]
    assert list(got.columns) == ["id", "text", "prediction", "probability_x",
                                 "probability_y", "probability_z"]  # a named index is kept
    assert got["id"].tolist() == [10, 11]
    got = _scored(chunk.reset_index(drop=True).set_axis([7, 7]), [{"value": 1.5},
                                                                 {"value": -2.0}], [], Path("t"))
    assert list(got.columns) == ["text", "prediction"]
    assert got["prediction"].tolist() == [1.5, -2.0]


def test_cli_scores_a_multilabel_model(tmp_path, monkeypatch):
    """Label sets ('a|c') in, label sets out: 'prediction' joins a row's labels with '|'."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(400, 3))
    on = np.stack([x[:, 0] > 0, x[:, 1] > 0, x[:, 2] > 0.5], axis=1)
    frame = pd.DataFrame(x, columns=["x0", "x1", "x2"])
    frame["tags"] = ["|".join(t for t, hit in zip("abc", row, strict=True) if hit)
                     for row in on]
    run = launchml.fit(frame, target="tags", task="multilabel", model="linear",
                       output_dir=str(tmp_path / "runs"))
    monkeypatch.setattr(predictor_module, "TABLE_CHUNK", 64)
    src = tmp_path / "new.csv"
    frame.drop(columns=["tags"]).head(150).to_csv(src, index=False)
    out = tmp_path / "scored.csv"
    result = CliRunner().invoke(app, ["predict", str(run.model_dir), str(src), "--out",
                                      str(out)])
    assert result.exit_code == 0, result.output
    got = pd.read_csv(out, keep_default_na=False)
    assert list(got.columns) == ["x0", "x1", "x2", "prediction", "probability_a",
                                 "probability_b", "probability_c"]
    rows = run.predictor.predict_rows(src)
    assert got["prediction"].tolist() == ["|".join(r["labels"]) for r in rows]
    assert (got["prediction"] == frame["tags"].head(150)).mean() > 0.7
