from __future__ import annotations

import base64

import pytest
from fastapi.testclient import TestClient

import launchml
from launchml.deploy.server import create_app


@pytest.fixture(scope="module")
def client(digits_run):
    return TestClient(create_app(launchml.load(digits_run.dir.model)))


def _png(digits_dir, digit="4"):
    return sorted((digits_dir / "test" / digit).glob("*.png"))[0].read_bytes()


def test_healthz_and_model_info(client):
    assert client.get("/healthz").json()["status"] == "ok"
    info = client.get("/v1/model").json()
    assert info["task"]["labels"][:2] == ["0", "1"]
    assert "/v1/predict" in client.get("/openapi.json").json()["paths"]


def test_predict_multipart_and_base64(client, digits_dir):
    data = _png(digits_dir)
    r = client.post("/v1/predict", files={"file": ("four.png", data, "image/png")})
    assert r.status_code == 200
    pred = r.json()["predictions"][0]
    assert pred["input"] == "four.png" and pred["label"] == "4"
    assert set(pred["probabilities"]) == {str(i) for i in range(10)}
    r = client.post("/v1/predict", json={"images": [base64.b64encode(data).decode(),
                                                    base64.encodebytes(data).decode()]})
    assert r.status_code == 200 and len(r.json()["predictions"]) == 2
    assert r.json()["predictions"][1]["probabilities"] == pred["probabilities"]


def test_a_bad_file_among_several_is_named(client, digits_dir):
    files = [("file", ("good.png", _png(digits_dir), "image/png")),
             ("file", ("bad.png", b"not really a png", "image/png"))]
    r = client.post("/v1/predict", files=files)
    assert r.status_code == 415 and "'bad.png'" in r.json()["error"]


@pytest.mark.parametrize(
    "kwargs,status",
    [
        ({"files": {"file": ("notes.txt", b"hello, not an image", "text/plain")}}, 415),
        ({"json": {"image": "%%% not base64 %%%"}}, 422),
        ({"json": {"img": "abc"}}, 422),
        ({"content": b"raw", "headers": {"content-type": "text/plain"}}, 415),
        ({"files": {"other": ("x.png", b"x", "image/png")}}, 422),
    ],
)
def test_bad_requests_are_4xx_json(client, kwargs, status):
    r = client.post("/v1/predict", **kwargs)
    assert r.status_code == status
    assert "error" in r.json()
