"""Reading tables and inferring column types, on bundled real data and mixed tables."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from launchml import ConfigError, DataError
from launchml.data.columns import infer_columns, target_task
from launchml.data.tables import read_table


def _types(df, **kw) -> dict[str, str]:
    return {c.name: c.type for c in infer_columns(df, **kw)}


@pytest.fixture(scope="module")
def breast_cancer_csv(tmp_path_factory):
    from sklearn.datasets import load_breast_cancer

    frame = load_breast_cancer(as_frame=True).frame
    frame["diagnosis"] = np.where(frame.pop("target") == 1, "benign", "malignant")
    path = tmp_path_factory.mktemp("bc") / "breast_cancer.csv"
    frame.to_csv(path, index=False)
    return path


def test_breast_cancer_numbers_and_binary_target(breast_cancer_csv):
    df, info = read_table(breast_cancer_csv)
    assert info["delimiter"] == "," and info["encoding"] == "utf-8" and info["rows"] == 569
    types = _types(df, target="diagnosis")
    assert types.pop("diagnosis") == "category"
    assert set(types.values()) == {"number"} and len(types) == 30
    assert target_task(df["diagnosis"])[0] == "binary"


def test_wine_multiclass_and_diabetes_regression():
    from sklearn.datasets import load_diabetes, load_wine

    wine = load_wine(as_frame=True).frame
    task, why = target_task(wine["target"])
    assert task == "multiclass" and why.startswith("3 classes")
    assert target_task(wine["target"], "regression")[0] == "regression"
    assert target_task(pd.Series(["1.5", "2.25", "3", "4.75"]))[0] == "regression"
    diabetes = load_diabetes(as_frame=True).frame
    task, why = target_task(diabetes["target"])
    assert task == "regression" and "distinct" in why


def _mixed(n: int = 60) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    income = rng.normal(50_000, 10_000, n)
    income[::7] = np.nan  # missing values stay a number column
    return pd.DataFrame({
        "customer_id": [f"C{i:05d}" for i in range(n)],
        "row": np.arange(n),
        "income": income,
        "plan": rng.choice(["basic", "plus", "pro"], n),
        "married": rng.choice(["yes", "no"], n),
        "signup": pd.date_range("2024-01-01", periods=n, freq="D").strftime("%Y-%m-%d"),
        "review": [f"great coffee and fast delivery number {i} thanks" for i in range(n)],
        "scan": [f"scans/{i}.png" for i in range(n)],
        "smiles": rng.choice(["CC(=O)Oc1ccccc1C(=O)O", "CN1C=NC2=C1C(=O)N(C(=O)N2C)C",
                              "C1=CC=C(C=C1)O", "CCN(CC)CC"], n),
        "protein": ["MKTAYIAKQRQISFVKSHFSRQLEERLGLIEVQ"[i % 5:] for i in range(n)],
        "country": ["DE"] * n,
        "nothing": [np.nan] * n,
    })


def test_mixed_table_types_and_reasons():
    infos = {c.name: c for c in infer_columns(_mixed(), target="married")}
    assert {k: v.type for k, v in infos.items()} == {
        "customer_id": "identifier", "row": "identifier", "income": "number",
        "plan": "category", "married": "boolean", "signup": "datetime", "review": "text",
        "scan": "image", "smiles": "molecule", "protein": "protein", "country": "constant",
        "nothing": "empty",
    }
    assert infos["income"].missing == 9
    assert "'DE'" in infos["country"].reason and "all 60 values" in infos["nothing"].reason


def test_overrides_win_and_are_reported():
    infos = {c.name: c for c in infer_columns(_mixed(), overrides={"row": "number"})}
    assert infos["row"].type == "number" and "set by the config" in infos["row"].reason
    with pytest.raises(DataError, match="not in the table"):
        infer_columns(_mixed(), overrides={"rowz": "number"})
    with pytest.raises(ConfigError, match="allowed"):
        infer_columns(_mixed(), overrides={"row": "integer"})


def test_target_errors():
    with pytest.raises(DataError, match="target column 'Status' is not in the table"):
        infer_columns(_mixed(), target="Status")
    with pytest.raises(DataError, match="nothing to learn"):
        infer_columns(_mixed(), target="country")


def test_sniffed_delimiter_encoding_and_quoted_newlines(tmp_path):
    p = tmp_path / "reviews.csv"
    text = 'id;comment;stars\n1;"Très bon; livraison\nrapide";5\n2;"Café froid";2\n'
    p.write_bytes(text.encode("cp1252"))
    df, info = read_table(p)
    assert info["delimiter"] == ";" and info["encoding"] != "utf-8"
    assert df["comment"].tolist() == ["Très bon; livraison\nrapide", "Café froid"]
    tsv = tmp_path / "t.tsv"
    tsv.write_text("a\tb\n1\t2\n")
    assert read_table(tsv)[0].columns.tolist() == ["a", "b"]


def test_parquet_jsonl_and_dataframe(tmp_path):
    df = _mixed(30)
    df.to_parquet(tmp_path / "t.parquet")
    assert read_table(tmp_path / "t.parquet")[0].shape == df.shape
    (tmp_path / "t.jsonl").write_text('{"a": 1, "b": "x"}\n\n{"a": 2, "b": "y"}\n')
    got, info = read_table(tmp_path / "t.jsonl")
    assert got.to_dict("list") == {"a": [1, 2], "b": ["x", "y"]} and info["format"] == "jsonl"
    assert read_table(df)[1]["format"] == "dataframe"


def test_bad_tables_name_the_file_line_and_fix(tmp_path):
    ragged = tmp_path / "ragged.csv"
    ragged.write_text("a,b,c\n1,2,3\n4,5,6,7\n")
    with pytest.raises(DataError, match=r"ragged.csv.*line 3.*Fix"):
        read_table(ragged)
    latin = tmp_path / "latin.csv"
    latin.write_bytes("name,city\nJosé,Zürich\n".encode("latin-1"))
    with pytest.raises(DataError, match=r"byte 13 \(line 2\) is not valid utf-8"):
        read_table(latin, encoding="utf-8")
    bad_json = tmp_path / "b.jsonl"
    bad_json.write_text('{"a": 1}\n{"a": 2,,}\n')
    with pytest.raises(DataError, match="line 2 is not valid JSON"):
        read_table(bad_json)
    nested = tmp_path / "n.jsonl"
    nested.write_text('{"a": 1, "tags": ["x", "y"]}\n')
    with pytest.raises(DataError, match=r"line 1: field\(s\) \['tags'\] hold a list"):
        read_table(nested)
    xls = tmp_path / "sheet.xls"
    xls.write_bytes(b"\xd0\xcf")
    with pytest.raises(DataError, match="unknown table format '.xls'"):
        read_table(xls)
    with pytest.raises(DataError, match="does not exist"):
        read_table(tmp_path / "missing.csv")
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    with pytest.raises(DataError, match="is empty"):
        read_table(empty)


def test_inspect_cli_prints_and_saves_the_report(breast_cancer_csv, tmp_path):
    from typer.testing import CliRunner

    from launchml.cli.main import app

    out = tmp_path / "report.json"
    result = CliRunner().invoke(app, ["inspect", str(breast_cancer_csv), "--target",
                                      "diagnosis", "--json", str(out)])
    assert result.exit_code == 0, result.output
    assert "mean radius" in result.output and "binary" in result.output
    report = json.loads(out.read_text())
    assert report["target"]["task"] == "binary" and len(report["columns"]) == 31
