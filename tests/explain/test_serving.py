"""Explanations where users meet them: ``launchml explain`` (files under explanations/,
a printed summary, --out CSV/JSONL), ``POST /v1/explain`` and ``GET /report``; bad
input gets the same error as predict."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

import launchml
from launchml.deploy.server import create_app
from tests.explain.conftest import signal_table


def _cli(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "launchml", *map(str, args)], cwd=cwd,
                          capture_output=True, text=True, timeout=300)


@pytest.mark.slow  # the real CLI in a subprocess (torch import)
def test_cli_explains_table_rows_into_the_run_folder(lightgbm_run, signal_csv, tmp_path):
    out = tmp_path / "why.csv"
    r = _cli("explain", lightgbm_run.dir.model, signal_csv, "--rows", "2:7", "--out", out)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert [line.split(":")[0] for line in lines if ": " in line][:5] == list("23456")
    assert "tree_shap" in r.stdout and "signal=" in r.stdout
    assert "baseline:" in r.stdout
    rows = list(csv.DictReader(out.open()))
    assert {row["input"] for row in rows} == {"2", "3", "4", "5", "6"}
    assert {row["column"] for row in rows} == {"signal", "noise_a", "noise_b", "noise_c"}
    jsonl = lightgbm_run.dir.root / "explanations" / "explanations.jsonl"
    first = json.loads(jsonl.read_text().splitlines()[0])
    assert first["method"] == "tree_shap" and first["input"] == 2
    assert {"baseline", "cost", "contributions", "output"} <= set(first)


@pytest.mark.slow  # the real CLI in a subprocess (torch import)
def test_cli_writes_an_overlay_per_image(square_run, tmp_path):
    folder = square_run.config.data.test
    r = _cli("explain", square_run.dir.model, f"{folder}/square", "--method", "hires_cam",
             "--dir", tmp_path / "why")
    assert r.returncode == 0, r.stderr
    pngs = sorted((tmp_path / "why").glob("*.hires_cam.png"))
    assert len(pngs) == 16 and pngs[0].read_bytes()[:4] == b"\x89PNG"
    assert "strongest at" in r.stdout


@pytest.mark.slow  # the real CLI in a subprocess (torch import)
def test_cli_bad_input_and_wrong_method(lightgbm_run, tmp_path):
    bad = tmp_path / "bad.csv"
    signal_table(5).drop(columns=["signal"]).to_csv(bad, index=False)
    explained = _cli("explain", lightgbm_run.dir.model, bad)
    predicted = _cli("predict", lightgbm_run.dir.model, bad)
    assert explained.returncode == 1 and "missing required column(s) ['signal']" in \
        explained.stderr + explained.stdout
    assert predicted.returncode == 1
    r = _cli("explain", lightgbm_run.dir.model, bad, "--method", "grad_cam")
    assert r.returncode == 1 and "Fix: use method='tree_shap'" in r.stderr + r.stdout


def test_server_explains_records_like_it_predicts_them(lightgbm_run):
    client = TestClient(create_app(launchml.load(lightgbm_run.dir.model)))
    records = signal_table(3).drop(columns=["label"]).to_dict(orient="records")
    r = client.post("/v1/explain", json={"records": records})
    assert r.status_code == 200
    ex = r.json()["explanations"]
    assert len(ex) == 3 and ex[0]["method"] == "tree_shap"
    assert {c["column"] for c in ex[0]["contributions"]} == {"signal", "noise_a", "noise_b",
                                                             "noise_c"}
    predicted = client.post("/v1/predict", json={"records": records}).json()["predictions"]
    assert [e["prediction"]["label"] for e in ex] == [p["label"] for p in predicted]
    # the same 422 as predict for a missing field; a method that does not apply names one
    bad = [{k: v for k, v in records[0].items() if k != "signal"}]
    a = client.post("/v1/explain", json={"records": bad})
    b = client.post("/v1/predict", json={"records": bad})
    assert a.status_code == b.status_code == 422 and a.json() == b.json()
    r = client.post("/v1/explain?method=grad_cam", json={"records": records})
    assert r.status_code == 422 and "tree_shap" in r.json()["error"]
    r = client.post("/v1/explain", json={"records": records * 30})
    assert r.status_code == 413 and "at most 64" in r.json()["error"]


def test_server_explains_an_upload_with_an_overlay_and_serves_the_report(square_run):
    client = TestClient(create_app(launchml.load(square_run.dir.model)))
    image = next((Path(square_run.config.data.test) / "square").glob("*.png"))
    files = [("file", ("scan.png", image.read_bytes(), "image/png"))]
    r = client.post("/v1/explain?overlay=true", files=files)
    assert r.status_code == 200
    e = r.json()["explanations"][0]
    assert e["input"] == "scan.png" and e["method"] == "integrated_gradients"
    assert e["heatmap_shape"] == [32, 32] and len(e["overlay_png"]) > 100
    png = client.post("/v1/explain?format=png&method=grad_cam", files=files)
    assert png.status_code == 200 and png.headers["content-type"] == "image/png"
    assert png.content[:4] == b"\x89PNG"
    broken = [("file", ("x.png", b"not an image", "image/png"))]
    a = client.post("/v1/explain", files=broken)
    b = client.post("/v1/predict", files=broken)
    assert a.status_code == b.status_code == 415 and a.json() == b.json()
    report = client.get("/report")
    assert report.status_code == 200 and "text/html" in report.headers["content-type"]
    assert "launchml report" in report.text


@pytest.mark.parametrize("path", ["/report"])
def test_no_report_is_a_404_that_says_how_to_make_one(linear_run, path):
    client = TestClient(create_app(launchml.load(linear_run.dir.model)))  # no evaluate stage
    r = client.get(path)
    assert r.status_code == 404 and "evaluate" in r.json()["error"]
