"""Attacks on the REST server (issue 9, items 1-6), each at a size that fits CI.

In process (FastAPI's TestClient) for what the app answers; a real ``launchml serve``
on 127.0.0.1 for what the connection layer and the process's memory do."""

from __future__ import annotations

import asyncio
import base64
import io
import json
import socket
from concurrent.futures import ThreadPoolExecutor

import httpx
import numpy as np
import pytest
from fastapi import FastAPI, Request
from fastapi.testclient import TestClient
from PIL import Image
from tests.security.payloads import closed_by_server, deep_json, png_bomb, stalled_connections

import launchml
from launchml.deploy.limits import ServerLimits, install
from launchml.deploy.server import create_app, exposure_warning


@pytest.fixture(scope="module")
def images(image_package):
    return TestClient(create_app(launchml.load(image_package)))


@pytest.fixture(scope="module")
def table(table_package):
    return TestClient(create_app(launchml.load(table_package)))


def _jpeg(w: int, h: int) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.full((h, w, 3), 128, np.uint8)).save(buf, "JPEG")
    return buf.getvalue()


def _png(w: int, h: int) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.full((h, w, 3), 128, np.uint8)).save(buf, "PNG")
    return buf.getvalue()


def _error(r: httpx.Response, status: int) -> str:
    assert r.status_code == status, (r.status_code, r.text[:500])
    assert r.headers["content-type"].startswith("application/json"), r.text[:200]
    return r.json()["error"]


def test_image_bomb_is_refused_from_its_header(images):
    bomb = png_bomb(9000, 9000)  # 16-bit grey: ~160 KB sent, 2.6 GB as float64
    assert len(bomb) < 400_000
    err = _error(images.post("/v1/predict", files={"file": ("bomb.png", bomb, "image/png")}),
                 413)
    assert "'bomb.png' is 9000x9000" in err and "16.8 million" in err and "--max-pixels" in err


def test_a_large_jpeg_is_decoded_reduced_a_large_png_refused(image_package):
    client = TestClient(create_app(launchml.load(image_package),
                                   ServerLimits(max_pixels=1_000_000)))
    r = client.post("/v1/predict", files={"file": ("big.jpg", _jpeg(1800, 1800), "image/jpeg")})
    assert r.status_code == 200, r.text  # 3.2 MP: decoded at 1/2 scale (0.8 MP)
    err = _error(client.post("/v1/predict", files={"file": ("big.png", _png(1800, 1800),
                                                             "image/png")}), 413)
    assert "1800x1800" in err and "1.0 million" in err


def test_body_size_is_limited_by_header_and_by_stream(image_package):
    client = TestClient(create_app(launchml.load(image_package), ServerLimits(max_body_mb=1)))
    big = b"x" * (2 << 20)
    err = _error(client.post("/v1/predict", content=big,
                             headers={"content-type": "application/json"}), 413)
    assert "2.0 MiB" in err and "--max-body-mb" in err

    def chunks():  # no Content-Length: counted while read
        for _ in range(8):
            yield b"x" * (256 << 10)

    err = _error(client.post("/v1/predict", content=chunks(),
                             headers={"content-type": "application/json"}), 413)
    assert "over 1 MiB" in err


def test_images_and_records_per_request_are_limited(image_package, table_package):
    client = TestClient(create_app(launchml.load(image_package), ServerLimits(max_batch=3)))
    one = base64.b64encode(_png(24, 24)).decode()
    assert client.post("/v1/predict", json={"images": [one] * 3}).status_code == 200
    err = _error(client.post("/v1/predict", json={"images": [one] * 4}), 413)
    assert "4 images" in err and "--max-batch" in err
    files = [("file", (f"{i}.png", _png(24, 24), "image/png")) for i in range(4)]
    err = _error(client.post("/v1/predict", files=files), 400)  # Starlette's own limit
    assert "multipart" in err and "Too many files" in err

    client = TestClient(create_app(launchml.load(table_package), ServerLimits(max_records=5)))
    record = {"sepal length (cm)": 5.1, "sepal width (cm)": 3.5, "petal length (cm)": 1.4,
              "petal width (cm)": 0.2}
    err = _error(client.post("/v1/predict", json={"records": [record] * 6}), 413)
    assert "6 records" in err and "--max-records" in err
    csv = "\n".join([",".join(record), *[",".join(map(str, record.values()))] * 6])
    err = _error(client.post("/v1/predict", content=csv, headers={"content-type": "text/csv"}),
                 413)
    assert "--max-records" in err


@pytest.mark.parametrize("which", ["images", "table"])
def test_deep_json_is_a_json_422(which, request):
    client = request.getfixturevalue(which)
    err = _error(client.post("/v1/predict", content=deep_json(100_000),
                             headers={"content-type": "application/json"}), 422)
    assert "nested too deeply" in err


def test_every_error_is_json(images):
    assert "no route" in _error(images.get("/nope"), 404)
    assert "not allowed" in _error(images.get("/v1/predict"), 405)
    big_field = {"note": "y" * (1 << 20 + 1)}  # Starlette's multipart field-size limit
    err = _error(images.post("/v1/predict", data=big_field,
                             files={"file": ("a.png", _png(24, 24), "image/png")}), 400)
    assert "multipart" in err
    assert _error(images.post("/v1/predict", content=b"\xff\xfe{",
                              headers={"content-type": "application/json"}), 422)


@pytest.mark.parametrize("value", ["NaN", "Infinity", "-Infinity", "1e400"])
def test_non_finite_numbers_are_a_422_naming_the_field(table, value):
    body = ('{"records": [{"sepal length (cm)": 5.1, "sepal width (cm)": 3.5, '
            f'"petal length (cm)": {value}, "petal width (cm)": 0.2}}]}}')
    err = _error(table.post("/v1/predict", content=body,
                            headers={"content-type": "application/json"}), 422)
    assert "records[0].petal length (cm)" in err and value in err


def test_a_nested_value_is_a_422_naming_the_field(table):
    err = _error(table.post("/v1/predict", json={"records": [{"sepal length (cm)": [1, 2]}]}),
                 422)
    assert "records[0].sepal length (cm)" in err


def test_docs_are_local_and_show_no_server_path(images, image_package):
    spec = images.get("/openapi.json").text
    assert str(image_package) not in spec and str(image_package.parent) not in spec
    for page in ("/docs", "/redoc"):
        html = images.get(page).text
        assert "/docs/assets/" in html and "cdn" not in html.lower() and "http" not in html
    for asset in ("swagger-ui-bundle.js", "swagger-ui.css", "redoc.standalone.js"):
        r = images.get(f"/docs/assets/{asset}")
        assert r.status_code == 200 and len(r.content) > 10_000
    assert images.get("/docs/assets/..%2f..%2fpackage.json").status_code == 404


def test_binding_every_interface_warns(image_package, monkeypatch, capsys):
    assert exposure_warning("127.0.0.1", 8000) is None
    warning = exposure_warning("0.0.0.0", 8000)
    assert "every network interface" in warning and "no API key is required" in warning
    assert "--api-key-file" in warning
    assert "/v1/predict" in warning
    import uvicorn

    from launchml.deploy import server

    monkeypatch.setattr(uvicorn.Server, "run", lambda self: None)  # bind nothing
    server.serve(launchml.load(image_package), host="0.0.0.0", port=8000)
    assert "every network interface" in capsys.readouterr().err


def test_busy_server_answers_503_json_and_health_stays_up():
    """Two requests may compute, none wait: the third gets a 503 at once."""
    app = FastAPI()
    install(app, ServerLimits(max_concurrent=2, max_queue=1))
    entered, release = asyncio.Event(), asyncio.Event()
    inside = 0

    @app.post("/work")
    async def work(_: Request) -> dict:
        nonlocal inside
        inside += 1
        if inside == 2:
            entered.set()
        await release.wait()
        return {"ok": True}

    @app.get("/healthz")
    async def healthz() -> dict:
        return {"status": "ok"}

    async def scenario() -> list[httpx.Response]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            running = [asyncio.create_task(client.post("/work")) for _ in range(2)]
            await entered.wait()  # both slots taken
            queued = asyncio.create_task(client.post("/work"))
            while not _waiting(app):  # until the third is queued
                await asyncio.sleep(0)
            refused = await client.post("/work")  # no room in the queue: 503
            health = await client.get("/healthz")  # never queued
            release.set()
            return [refused, health, *(await asyncio.gather(*running, queued))]

    refused, health, *done = asyncio.run(scenario())
    assert "busy" in _error(refused, 503) and refused.headers["retry-after"] == "1"
    assert health.status_code == 200
    assert [r.status_code for r in done] == [200, 200, 200]


def _waiting(app: FastAPI) -> int:
    """The guard's count of queued requests (found on the built middleware stack)."""
    node = app.middleware_stack
    while node is not None and not hasattr(node, "waiting"):
        node = getattr(node, "app", None)
    return node.waiting if node is not None else 0


@pytest.mark.slow
def test_real_server_survives_bombs_and_stalled_connections(image_package, server_factory):
    """The image bomb four at a time, and 300 stalled connections over a cap of 100: RSS
    stays bounded, /healthz answers throughout, stalled connections are closed."""
    srv = server_factory(image_package, "--request-timeout", "3", "--idle-timeout", "2",
                         "--max-connections", "100")
    health = httpx.get(f"{srv.url}/healthz", timeout=30)
    assert health.status_code == 200
    base = srv.rss_mb()
    bomb = png_bomb(9000, 9000)

    def send(_: int) -> int:
        return httpx.post(f"{srv.url}/v1/predict", timeout=60,
                          files={"file": ("bomb.png", bomb, "image/png")}).status_code

    with ThreadPoolExecutor(4) as pool:
        assert list(pool.map(send, range(8))) == [413] * 8
    assert srv.rss_mb() - base < 150, (base, srv.rss_mb())

    stalled = stalled_connections("127.0.0.1", srv.port, 300)
    try:
        with httpx.Client(timeout=10) as client:  # a new connection each time
            for _ in range(5):
                r = client.get(f"{srv.url}/healthz", headers={"connection": "close"})
                assert r.status_code == 200
        # the oldest stalled ones were closed to make room, the rest after the timeout
        answers = [closed_by_server(s, timeout=20) for s in stalled]
        assert all(a is not None for a in answers)
        timed_out = [a for a in answers if a]
        assert timed_out and all(b"408" in a and b'"error"' in a for a in timed_out)
    finally:
        for s in stalled:
            s.close()
    assert srv.rss_mb() - base < 150
    assert httpx.get(f"{srv.url}/healthz", timeout=10).status_code == 200


def test_real_server_closes_silent_connections_and_bad_heads(table_package, server_factory):
    srv = server_factory(table_package, "--idle-timeout", "1", "--request-timeout", "2")
    with stalled_connections("127.0.0.1", srv.port, 1, head=False)[0] as silent:
        assert closed_by_server(silent, timeout=15) == b""  # idle: closed without a word
    with socket.create_connection(("127.0.0.1", srv.port), timeout=10) as s:
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-big: " + b"a" * 20_000)  # no end
        answer = closed_by_server(s, timeout=15)
    assert answer is not None and answer.startswith(b"HTTP/1.1 400")
    assert json.loads(answer.split(b"\r\n\r\n", 1)[1])["error"].startswith("Invalid HTTP")
