"""Image columns of table records on the server (issue 9): a record's image is base64
data, never a path the server opens, unless the operator names a folder (--image-root);
Python and CLI prediction still read paths (a local user's own files)."""

from __future__ import annotations

import base64
import json
import os
from pathlib import Path

import pandas as pd
import pytest
from fastapi.testclient import TestClient
from PIL import Image
from tests.tables_data import image_table

import launchml
from launchml.deploy.app import create_models_app
from launchml.deploy.limits import ServerLimits
from launchml.deploy.models import ServeOptions, Source
from launchml.deploy.server import create_app

pytestmark = pytest.mark.slow  # the module's fixture trains a small mixed model (~15 s)


@pytest.fixture(scope="module")
def mixed(tmp_path_factory) -> tuple[Path, Path]:
    """An mlp on an image column + a number (images/<i>.png, bright or dark), and the
    training table's folder."""
    root = tmp_path_factory.mktemp("sec-mixed")
    path = image_table(root, 24)
    pd.read_csv(path).drop(columns="caption").to_csv(path, index=False)
    cfg = {"name": "mixed", "output_dir": str(root / "runs"), "seed": 0,
           "data": {"train": str(path), "target": "label", "image_size": [24, 24]},
           "model": {"name": "mlp"}, "train": {"epochs": 1, "batch_size": 8}}
    return launchml.run(cfg, stages=["prepare", "train", "deploy"]).dir.model, root


@pytest.fixture(scope="module")
def secret(tmp_path_factory) -> Path:
    """An image outside any folder the server was given: what an attacker would probe."""
    path = tmp_path_factory.mktemp("sec-secret") / "secret.png"
    Image.new("RGB", (16, 16), (200, 10, 10)).save(path)
    return path


def _b64(path: Path) -> str:
    return base64.b64encode(path.read_bytes()).decode()


def _error(r, status: int) -> str:
    assert r.status_code == status, (r.status_code, r.text[:500])
    return r.json()["error"]


def test_a_path_in_a_record_is_refused(mixed, secret):
    model, root = mixed
    client = TestClient(create_app(launchml.load(model)))
    for value in (str(secret), str(root / "images" / "0.png"), "images/0.png",
                  "../" * 8 + str(secret).lstrip("/")):
        error = _error(client.post("/v1/predict", json={"records": [
            {"photo": value, "weight": 0.0}]}), 422)
        assert error.startswith("records[0].photo"), error
        assert "base64" in error and "--image-root" in error
    # the CSV body reads the same way
    r = client.post("/v1/predict", content=f"photo,weight\n{secret},0.0\n".encode(),
                    headers={"content-type": "text/csv"})
    assert "records[0].photo" in _error(r, 422)
    # /v1/explain shares the reader
    r = client.post("/v1/explain", json={"records": [{"photo": str(secret), "weight": 0.0}]})
    assert r.status_code in (422, 501), r.text[:300]


def test_base64_and_data_uris_predict_as_the_file_does(mixed):
    model, root = mixed
    predictor = launchml.load(model)
    client = TestClient(create_app(predictor))
    files = [root / "images" / f"{i}.png" for i in range(3)]
    records = [{"photo": _b64(files[0]), "weight": 0.5},
               {"photo": "data:image/png;base64," + _b64(files[1]), "weight": -0.5},
               {"photo": _b64(files[2]), "weight": 0.0}]
    r = client.post("/v1/predict", json={"records": records})
    assert r.status_code == 200, r.text[:500]
    got = [p["probabilities"] for p in r.json()["predictions"]]
    # the local user's API reads the paths as before
    want = predictor.predict_rows(pd.DataFrame(
        {"photo": [str(f) for f in files], "weight": [0.5, -0.5, 0.0]}))
    for g, w in zip(got, want, strict=True):
        assert g == pytest.approx(w["probabilities"], abs=1e-6)
    # base64 that is not an image: a 422 naming the column, not a 500
    r = client.post("/v1/predict", json={"records": [{"photo": "aGVsbG8=", "weight": 0}]})
    assert "photo" in _error(r, 422)


def test_the_openapi_body_asks_for_base64(mixed):
    model, _ = mixed
    spec = TestClient(create_app(launchml.load(model))).get("/openapi.json").json()
    body = spec["paths"]["/v1/predict"]["post"]["requestBody"]["content"]["application/json"]
    photo = body["schema"]["properties"]["records"]["items"]["properties"]["photo"]
    assert photo["format"] == "byte" and photo["contentEncoding"] == "base64"
    assert "path of an image file on the server" not in json.dumps(spec)


def test_image_root_allows_paths_inside_it_only(mixed, secret):
    model, root = mixed
    (root / "images" / "escape.png").symlink_to(secret)
    try:
        client = TestClient(create_app(launchml.load(model),
                                       ServerLimits(image_root=str(root))))
        r = client.post("/v1/predict", json={"records": [
            {"photo": "images/0.png", "weight": 0.0},
            {"photo": _b64(root / "images" / "1.png"), "weight": 0.0}]})
        assert r.status_code == 200, r.text[:500]
        for value in (str(secret), "../" + secret.parent.name + "/secret.png",
                      "images/escape.png", str(root / "images" / "0.png")):
            error = _error(client.post("/v1/predict", json={"records": [
                {"photo": value, "weight": 0.0}]}), 422)
            assert error.startswith("records[0].photo") and "--image-root" in error, error
    finally:
        os.unlink(root / "images" / "escape.png")


def test_the_multi_model_routes_refuse_paths_too(mixed, secret):
    model, _ = mixed
    app = create_models_app([Source(name="mixed", path=str(model))], ServeOptions())
    with TestClient(app) as client:
        r = client.post("/v1/models/mixed/predict",
                        json={"records": [{"photo": str(secret), "weight": 0.0}]})
        assert _error(r, 422).startswith("records[0].photo")


def test_cli_predict_still_reads_paths(mixed, tmp_path):
    from typer.testing import CliRunner

    from launchml.cli.main import app

    model, root = mixed
    rows = root / "rows.csv"
    rows.write_text("photo,weight\nimages/0.png,0.0\nimages/1.png,1.0\n")
    out = tmp_path / "scored.csv"
    result = CliRunner().invoke(app, ["predict", str(model), str(rows), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert len(pd.read_csv(out)) == 2
