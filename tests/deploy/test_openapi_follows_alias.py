"""`launchml serve --registry --models wine@champion`: after the alias moves to a version
with other inputs and labels, /openapi.json (what /docs shows) describes the version
serving now, not the one loaded at start (FastAPI caches the schema it made first)."""

from __future__ import annotations

import numpy as np
import pytest
from fastapi.testclient import TestClient

import launchml
from launchml.deploy.app import create_models_app
from launchml.deploy.models import ServeOptions, Source
from launchml.registry import Registry

pytestmark = pytest.mark.usefixtures("one_thread")

FEW = ["alcohol", "hue", "proline"]  # version 2's only inputs


@pytest.fixture(scope="module")
def registry(tmp_path_factory):
    """wine version 1: 13 inputs, cultivar names; version 2: 3 inputs, class numbers."""
    from sklearn.datasets import load_wine

    root = tmp_path_factory.mktemp("swap")
    frame = load_wine(as_frame=True).frame
    named = frame.assign(target=np.array(["barolo", "grignolino", "barbera"])[frame.target])
    named.to_csv(root / "all.csv", index=False)
    frame[[*FEW, "target"]].assign(target=frame.target.map("class_{}".format)).to_csv(
        root / "few.csv", index=False)
    url = f"sqlite:///{root / 'registry.db'}"  # artifacts beside it
    with Registry(url) as reg:
        for data in ("all", "few"):
            run = launchml.run({"name": data, "output_dir": str(root / "runs"),
                                "data": {"train": str(root / f"{data}.csv"), "target": "target"},
                                "model": {"name": "linear"}}, stages=["prepare", "train"])
            reg.add(run.model_dir, name="wine")
        reg.set_alias("wine", "champion", 1)
    return url, named.drop(columns="target").head(3).to_dict("records")


def _documented(spec: dict) -> tuple[list[str], list[str], str]:
    """(the predict route's record fields, the answer's labels, its description)."""
    op = spec["paths"]["/v1/models/wine/predict"]["post"]
    record = op["requestBody"]["content"]["application/json"]["schema"]["properties"][
        "records"]["items"]
    answer = op["responses"]["200"]["content"]["application/json"]["schema"]["$ref"]
    rows = spec["components"]["schemas"][answer.rsplit("/", 1)[1]]["properties"][
        "predictions"]["items"]["$ref"]
    label = spec["components"]["schemas"][rows.rsplit("/", 1)[1]]["properties"]["label"]
    return sorted(record["properties"]), label["enum"], op.get("description", "")


@pytest.mark.slow  # trains two models and serves them (about 8 s on 2 cores)
def test_openapi_describes_the_version_the_alias_names_now(registry):
    url, records = registry
    app = create_models_app([Source.parse("wine@champion", registry=True)],
                            ServeOptions(registry_url=url, poll_s=0))
    with TestClient(app) as c:
        fields, labels, served = _documented(c.get("/openapi.json").json())
        assert len(fields) == 13 and labels == ["barbera", "barolo", "grignolino"]
        first = served
        assert c.post("/v1/models/wine/predict", json={"records": records}).status_code == 200

        with Registry(url) as reg:
            reg.set_alias("wine", "champion", 2)
        assert c.post("/v1/models/wine/refresh").json()["result"] == "swapped"
        fields, labels, served = _documented(c.get("/openapi.json").json())
        assert fields == FEW and labels == ["class_0", "class_1", "class_2"]
        assert "version 1" in first and "version 2" in served  # which version it describes
        assert "Swagger" in c.get("/docs").text  # the page reads /openapi.json
        # the documented request is the one the new version answers
        r = c.post("/v1/models/wine/predict",
                   json={"records": [{k: v for k, v in records[0].items() if k in FEW}]})
        assert r.status_code == 200 and r.json()["version"] == 2
        assert r.json()["predictions"][0]["label"] in labels
