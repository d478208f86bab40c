"""The multi-model server (deploy/app.py) in process: routes, micro-batching, API keys,
CORS, metrics, OpenAPI per model."""

from __future__ import annotations

import asyncio
import base64

import pandas as pd
import pytest
from fastapi.testclient import TestClient

from launchml.deploy.app import create_models_app
from launchml.deploy.auth import ApiKeys, hash_key
from launchml.deploy.metrics import parse
from launchml.deploy.models import Loaded, ServeOptions, Source


@pytest.fixture(scope="module")
def cancer(tmp_path_factory):
    """(a linear breast-cancer package, 40 new records)."""
    from sklearn.datasets import load_breast_cancer

    import launchml

    root = tmp_path_factory.mktemp("app")
    frame = load_breast_cancer(as_frame=True).frame
    frame.to_csv(root / "cancer.csv", index=False)
    run = launchml.fit(root / "cancer.csv", target="target", model="linear", name="cancer",
                       output_dir=str(root / "runs"))
    records = frame.drop(columns=["target"]).head(40).to_dict(orient="records")
    return run.dir.model, records


def _app(model, **options):
    return create_models_app([Source(name="cancer", path=str(model))], ServeOptions(**options))


def test_routes_answer_records_and_batches(cancer):
    import launchml

    model, records = cancer
    want = launchml.load(model).predict_rows(pd.DataFrame(records[:5]))
    with TestClient(_app(model)) as c:
        assert c.get("/healthz").json() == {"status": "ok"}
        assert c.get("/readyz").json() == {"status": "ready", "models": {"cancer": None}}
        listed = c.get("/v1/models").json()["models"]
        assert [m["name"] for m in listed] == ["cancer"] and listed[0]["engine"] == "linear"
        info = c.get("/v1/models/cancer").json()
        assert info["task"]["name"] == "binary" and len(info["inputs"]) == 30
        r = c.post("/v1/models/cancer/predict", json={"records": records[:5]})
        assert r.status_code == 200
        got = r.json()["predictions"]
        assert [g["input"] for g in got] == [0, 1, 2, 3, 4]
        assert [g["label"] for g in got] == [w["label"] for w in want]
        bad = [dict(r) for r in records[:3]]
        bad[2]["mean radius"] = "abc"
        r = c.post("/v1/models/cancer/predict", json={"records": bad})
        assert r.status_code == 422 and r.json()["error"].startswith("records[2]")
        assert "mean radius" in r.json()["error"]
        r = c.post("/v1/models/nosuch/predict", json={"records": records[:1]})
        assert r.status_code == 404 and "error" in r.json()
        csv = pd.DataFrame(records[:2]).to_csv(index=False)
        r = c.post("/v1/models/cancer/predict", content=csv,
                   headers={"content-type": "text/csv"})
        assert r.status_code == 200 and len(r.json()["predictions"]) == 2


def test_openapi_declares_each_models_request_and_answer(cancer):
    model, _ = cancer
    with TestClient(_app(model)) as c:
        spec = c.get("/openapi.json").json()
    route = spec["paths"]["/v1/models/cancer/predict"]["post"]
    record = route["requestBody"]["content"]["application/json"]["schema"]["properties"][
        "records"]["items"]
    assert "mean radius" in record["properties"] and len(record["required"]) == 30
    answer = spec["components"]["schemas"]["cancer_prediction"]["properties"]
    assert answer["label"]["enum"] == ["0", "1"]


def test_micro_batches_gather_concurrent_requests_and_isolate_a_bad_input(cancer):
    import launchml

    model, records = cancer
    predictor = launchml.load(model)
    sizes = []

    class Sizes:
        def batch(self, name, n, seconds):
            sizes.append(n)

    loaded = Loaded("cancer", predictor, version=None, ref="x", content_hash=None,
                    options=ServeOptions(max_batch_size=8, max_wait_ms=50),
                    metrics=Sizes())
    bad = {**records[5], "mean radius": "abc"}
    requests = [[r] for r in records[:12]] + [[bad]] + [[r] for r in records[12:19]]

    async def main():
        out = await asyncio.gather(*(loaded.batcher.submit(req) for req in requests),
                                   return_exceptions=True)
        await loaded.batcher.close()
        return out

    answers = asyncio.run(main())
    # 20 single-input requests, all queued before the batcher runs: full batches, then
    # the rest once no more arrive within max_wait_ms
    assert sizes == [8, 8, 4]
    from launchml.errors import InputError

    assert isinstance(answers[12], InputError) and "mean radius" in str(answers[12])
    good = [a[0] for i, a in enumerate(answers) if i != 12]
    want = predictor.predict_rows(pd.DataFrame(records[:19]))
    assert [g["label"] for g in good] == [w["label"] for w in want]
    for g, w in zip(good, want, strict=True):
        assert g["probabilities"] == pytest.approx(w["probabilities"])


def test_no_batching_scores_one_input_at_a_time(cancer):
    import launchml

    model, records = cancer
    sizes = []

    class Sizes:
        def batch(self, name, n, seconds):
            sizes.append(n)

    loaded = Loaded("cancer", launchml.load(model), version=None, ref="x", content_hash=None,
                    options=ServeOptions(max_batch_size=1), metrics=Sizes())

    async def main():
        await asyncio.gather(*(loaded.batcher.submit([r]) for r in records[:6]))
        await loaded.batcher.close()

    asyncio.run(main())
    assert sizes == [1] * 6


def test_api_keys_hashed_with_scopes(cancer, tmp_path, monkeypatch):
    model, records = cancer
    keys_file = tmp_path / "keys.txt"
    keys_file.write_text(f"# clients\n{hash_key('s3cret-predict')} predict\n"
                         "plain-admin-key admin\n")
    monkeypatch.setenv("LAUNCHML_API_KEYS", f"{hash_key('from-env')} predict")
    keys = ApiKeys.load(keys_file)
    assert len(keys.entries) == 3 and all(len(h) == 32 for h, _ in keys.entries)
    assert b"s3cret" not in repr(keys).encode()  # only hashes are kept
    body = {"records": records[:1]}
    with TestClient(_app(model, api_keys=keys)) as c:
        assert c.post("/v1/models/cancer/predict", json=body).status_code == 401
        bad = c.post("/v1/models/cancer/predict", json=body,
                     headers={"Authorization": "Bearer s3cret-predicX"})
        assert bad.status_code == 401 and "API key" in bad.json()["error"]
        for headers in ({"Authorization": "Bearer s3cret-predict"},
                        {"X-API-Key": "from-env"}, {"X-API-Key": "plain-admin-key"}):
            assert c.post("/v1/models/cancer/predict", json=body,
                          headers=headers).status_code == 200
        assert c.get("/metrics", headers={"X-API-Key": "s3cret-predict"}).status_code == 403
        assert c.get("/metrics", headers={"X-API-Key": "plain-admin-key"}).status_code == 200
        assert c.get("/healthz").status_code == 200 and c.get("/readyz").status_code == 200


def test_keys_are_compared_in_constant_time(monkeypatch):
    import hmac

    keys = ApiKeys.parse("a predict\nb predict\nc admin", "test")
    calls = []
    real = hmac.compare_digest
    monkeypatch.setattr(hmac, "compare_digest", lambda x, y: calls.append(1) or real(x, y))
    assert keys.scopes("a") == {"predict"}  # the first matches: the others are compared too
    assert len(calls) == 3
    assert keys.scopes("c") == {"predict", "admin"} and keys.scopes("zz") == frozenset()
    with pytest.raises(Exception, match="unknown scope"):
        ApiKeys.parse("k write", "keys.txt")


def test_cors_is_off_unless_origins_are_given(cancer):
    model, _ = cancer
    origin = {"Origin": "https://app.example", "Access-Control-Request-Method": "POST"}
    with TestClient(_app(model)) as c:
        r = c.options("/v1/models/cancer/predict", headers=origin)
        assert "access-control-allow-origin" not in r.headers
    with TestClient(_app(model, cors_origins=("https://app.example",))) as c:
        r = c.options("/v1/models/cancer/predict", headers=origin)
        assert r.headers["access-control-allow-origin"] == "https://app.example"


def test_metrics_count_latency_batches_errors_and_the_loaded_version(cancer):
    model, records = cancer
    with TestClient(_app(model)) as c:
        for _ in range(3):
            c.post("/v1/models/cancer/predict", json={"records": records[:4]})
        c.post("/v1/models/cancer/predict", json={"records": [{"mean radius": "x"}]})
        c.post("/v1/models/nosuch/predict", json={"records": records[:1]})
        m = parse(c.get("/metrics").text)
    assert m["launchml_request_seconds_count{model=cancer,route=predict}"] == 4
    assert m["launchml_requests_total{code=200,model=cancer,route=predict}"] == 3
    assert m["launchml_errors_total{code=422,model=cancer}"] == 1
    assert m["launchml_errors_total{code=404,model=-}"] == 1  # no label per unknown name
    assert m["launchml_batch_size_sum{model=cancer}"] == 13  # the bad record was tried
    assert m[f"launchml_model_loaded{{model=cancer,ref={model},version=}}"] == 1


def test_explain_route_when_the_stage_exists(cancer):
    pytest.importorskip("launchml.explain")
    model, records = cancer
    with TestClient(_app(model)) as c:
        r = c.post("/v1/models/cancer/explain", json={"records": records[:2]})
    assert r.status_code == 200, r.text
    assert len(r.json()["explanations"]) == 2


@pytest.mark.slow
def test_two_models_at_once_images_and_records(cancer, digits_run, digits_dir):
    import launchml

    model, records = cancer
    app = create_models_app([Source(name="cancer", path=str(model)),
                             Source(name="digits", path=str(digits_run.dir.model))])
    png = sorted((digits_dir / "test" / "7").glob("*.png"))[0].read_bytes()
    with TestClient(app) as c:
        assert {m["name"]: m["engine"] for m in c.get("/v1/models").json()["models"]} == {
            "cancer": "linear", "digits": "onnx"}  # ONNX Runtime where the package has it
        r = c.post("/v1/models/digits/predict",
                   files=[("file", ("a.png", png, "image/png")),
                          ("file", ("b.png", png, "image/png"))])
        assert r.status_code == 200
        rows = r.json()["predictions"]
        want = launchml.load(digits_run.dir.model, engine="onnx").predict_rows([png], ["a.png"])
        assert [x["input"] for x in rows] == ["a.png", "b.png"]
        assert rows[0]["label"] == want[0]["label"]
        r = c.post("/v1/models/digits/predict",
                   json={"images": [base64.b64encode(png).decode(), "bm90IGFuIGltYWdl"]})
        assert r.status_code == 415 and "image1" in r.json()["error"]
        assert c.post("/v1/models/cancer/predict",
                      json={"records": records[:2]}).status_code == 200
