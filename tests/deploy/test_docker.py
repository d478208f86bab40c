"""``launchml package docker``: the build context, and its slim requirements serving the
model from a fresh virtual environment (ONNX Runtime, no training libraries)."""

from __future__ import annotations

import base64
import json
import os
import socket
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

LAUNCHML = str(Path(sys.executable).parent / "launchml")
TRAINING = ("torch", "lightning-fabric", "timm", "scikit-learn", "lightgbm", "matplotlib")


@pytest.fixture(scope="module")
def context(digits_run, tmp_path_factory):
    out = tmp_path_factory.mktemp("docker") / "ctx"
    r = subprocess.run([LAUNCHML, "package", "docker", str(digits_run.dir.model), "--out",
                        str(out)], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    return out


@pytest.mark.slow
def test_the_context_files(context, digits_run):
    docker = (context / "Dockerfile").read_text()
    assert docker.startswith("# Serves the model package") and "FROM python:3." in docker
    assert '"--engine", "onnx"' in docker and "COPY model/ /srv/model/" in docker
    assert "USER launchml" in docker and "HEALTHCHECK" in docker
    reqs = [r for r in (context / "requirements.txt").read_text().splitlines()
            if r and not r.startswith("#")]
    names = {r.split("==")[0].lower() for r in reqs}
    assert all("==" in r for r in reqs)  # exact pins
    assert {"onnxruntime", "fastapi", "uvicorn", "numpy", "pillow"} <= names
    assert not names & set(TRAINING), names & set(TRAINING)
    assert "docker build" in (context / "README.md").read_text()
    model = digits_run.dir.model
    assert (context / "model" / "package.json").read_bytes() == \
        (model / "package.json").read_bytes()
    assert (context / "model" / "model.onnx").is_file()
    assert len(list((context / "wheels").glob("launchml-*.whl"))) == 1


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_the_slim_set_serves_the_model_in_a_fresh_venv(context, digits_run, digits_dir,
                                                       tmp_path):
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "-q",
           "--disable-pip-version-check"]
    r = subprocess.run([*pip, "-r", str(context / "requirements.txt")], capture_output=True,
                       text=True, timeout=900)
    if r.returncode != 0 and ("Could not find" in r.stderr or "connection" in r.stderr.lower()):
        pytest.skip(f"no package index reachable: {r.stderr[-300:]}")
    assert r.returncode == 0, r.stderr
    subprocess.run([*pip, "--no-deps", *map(str, (context / "wheels").glob("*.whl"))],
                   check=True, timeout=300)
    torch = subprocess.run([str(venv / "bin" / "python"), "-c", "import torch"],
                           capture_output=True)
    assert torch.returncode != 0  # no training libraries in the slim set

    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    server = subprocess.Popen([str(venv / "bin" / "launchml"), "serve", str(context / "model"),
                               "--port", str(port), "--engine", "onnx"],
                              stderr=subprocess.PIPE, text=True, env=env)
    try:
        for line in server.stderr:  # uvicorn says when it listens
            if "Uvicorn running" in line:  # after the bind (startup complete comes before it)
                break
        else:
            pytest.fail("the server exited before listening")
        png = sorted((digits_dir / "test" / "3").glob("*.png"))[0]
        body = json.dumps({"image": base64.b64encode(png.read_bytes()).decode()}).encode()
        req = urllib.request.Request(f"http://127.0.0.1:{port}/v1/predict", data=body,
                                     headers={"content-type": "application/json"})
        with urllib.request.urlopen(req, timeout=60) as resp:
            got = json.loads(resp.read())["predictions"][0]
        import launchml

        want = launchml.load(digits_run.dir.model, engine="onnx").predict_rows([str(png)])[0]
        assert got["label"] == want["label"]
        assert got["probabilities"] == pytest.approx(want["probabilities"], abs=1e-5)
    finally:
        server.terminate()
        server.wait(timeout=60)
        server.stderr.close()
