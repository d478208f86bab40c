"""End-to-end: the real ``launchml`` command on small real data, in subprocesses."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
import yaml
from safetensors.torch import load_file

LAUNCHML = [sys.executable, "-m", "launchml"]


def cli(*args: str, cwd: Path | None = None, check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run([*LAUNCHML, *args], cwd=cwd, capture_output=True, text=True,
                          env={**os.environ, "LAUNCHML_QUIET": "1"}, timeout=600)
    if check and proc.returncode != 0:
        raise AssertionError(f"launchml {' '.join(args)} failed:\n{proc.stderr}")
    return proc


def _config(tmp_path: Path, data: dict, **train) -> Path:
    text = cli("init", "image-classification").stdout
    cfg = yaml.safe_load(text)
    cfg.update(name="e2e", output_dir=str(tmp_path / "runs"))
    cfg["data"] = {**{k: v for k, v in cfg["data"].items() if k != "test"}, **data}
    cfg["train"].update({"epochs": 1, "batch_size": 16, **train})
    cfg["optimize"] = {"latency_runs": 2}
    path = tmp_path / "cfg.yaml"
    tmp_path.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(cfg))
    return path


def test_article_example_150px_jpegs_all_stages_then_predict(shapes_dir, tmp_path):
    cfg = _config(tmp_path, {"train": str(shapes_dir / "train"),
                             "test": str(shapes_dir / "test")})
    cli("run", str(cfg))
    run = tmp_path / "runs" / "e2e"
    for rel in ("config.yaml", "prepared/manifest.json", "checkpoints/best.ckpt",
                "events.jsonl", "model/package.json", "model/model.onnx",
                "variants/int8/model.onnx", "evaluation/metrics.json",
                "evaluation/plots/confusion_matrix.png"):
        assert (run / rel).exists(), rel
    meta = json.loads((run / "model" / "package.json").read_text())
    assert meta["task"] == {"name": "binary", "labels": ["circles", "squares"],
                            "threshold": None}
    out = cli("predict", str(run / "model"), str(shapes_dir / "test" / "circles")).stdout
    rows = [json.loads(line) for line in out.splitlines()]
    assert len(rows) == 8
    assert set(rows[0]) == {"file", "label", "probabilities"}
    assert rows[0]["file"].endswith(".jpg") and rows[0]["label"] in ("circles", "squares")
    onnx = cli("predict", str(run / "model"), rows[0]["file"], "--engine", "onnx").stdout
    assert json.loads(onnx)["label"] == rows[0]["label"]
    cli("predict", str(run / "model"), str(shapes_dir / "test"), "--out", str(tmp_path / "p.jsonl"))
    written = [json.loads(x) for x in (tmp_path / "p.jsonl").read_text().splitlines()]
    assert len(written) == 16 and written[:8] == rows


def test_quickstart_reaches_95_percent_on_digits(tmp_path):
    cli("quickstart", "--dir", str(tmp_path))
    run = tmp_path / "runs" / "digits"
    metrics = json.loads((run / "evaluation" / "metrics.json").read_text())
    assert metrics["split"] == "test" and metrics["accuracy"] >= 0.95
    # all five stages ran: prepared data, a checkpoint, ONNX variants, a package
    for rel in ("prepared/manifest.json", "checkpoints/best.ckpt", "model/package.json",
                "model/model.onnx", "variants/int8/model.onnx"):
        assert (run / rel).exists(), rel
    meta = json.loads((run / "model" / "package.json").read_text())
    assert meta["task"]["labels"] == [str(d) for d in range(10)]
    # the "Next:" command it prints works: the package predicts the digit 3 on its test images
    threes = tmp_path / "data" / "digits" / "test" / "3"
    rows = [json.loads(line) for line in
            cli("predict", str(run / "model"), str(threes)).stdout.splitlines()]
    assert len(rows) == len(list(threes.glob("*.png"))) > 0
    assert sum(r["label"] == "3" for r in rows) >= 0.9 * len(rows)


def test_config_errors_exit_2_and_data_errors_exit_1(tmp_path, digits_dir):
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({"name": "x", "data": {"train": "d"}, "trian": {}}))
    proc = cli("run", str(bad), check=False)
    assert proc.returncode == 2 and "unknown key 'trian'" in proc.stderr
    assert "did you mean 'train'" in proc.stderr
    data = tmp_path / "data"
    shutil.copytree(digits_dir / "train", data)
    (data / "3" / "broken.png").write_bytes(b"not a png")
    proc = cli("run", str(_config(tmp_path, {"train": str(data)})), check=False)
    assert proc.returncode == 1 and str(data / "3" / "broken.png") in proc.stderr
    assert "Traceback" not in proc.stderr


def _read_until(stream, needle: str) -> str:
    seen = []
    for line in stream:
        seen.append(line)
        if needle in line:
            return line
    raise AssertionError(f"process ended before printing {needle!r}:\n{''.join(seen)}")


def test_killed_run_resumes_to_the_same_weights(digits_dir, tmp_path):
    data = {"train": str(digits_dir / "train"), "target_size": [24, 24],
            "color_mode": "grayscale"}
    full = _config(tmp_path / "full", data, epochs=3, batch_size=64)
    cli("train", str(full))
    part = _config(tmp_path / "part", data, epochs=3, batch_size=64)
    proc = subprocess.Popen([*LAUNCHML, "train", str(part)], stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "LAUNCHML_QUIET": "0"})
    _read_until(proc.stderr, "epoch 1/3")  # printed after the epoch-1 checkpoint is saved
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL
    proc2 = cli("train", str(part), check=False)
    assert proc2.returncode == 1 and "--resume" in proc2.stderr
    cli("train", str(part), "--resume")
    a = load_file(tmp_path / "full" / "runs" / "e2e" / "model" / "weights.safetensors")
    b = load_file(tmp_path / "part" / "runs" / "e2e" / "model" / "weights.safetensors")
    assert all((a[k] == b[k]).all() for k in a)
    events = (tmp_path / "part" / "runs" / "e2e" / "events.jsonl").read_text().splitlines()
    rows = [json.loads(e) for e in events]
    assert [r["epoch"] for r in rows if r["event"] == "epoch"] == [1, 2, 3]
    assert [r["family"] for r in rows if r["event"] == "family"] == ["seed_cnn"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_serve_real_server(digits_run, digits_dir):
    port = _free_port()
    proc = subprocess.Popen([*LAUNCHML, "serve", str(digits_run.dir.model), "--port",
                             str(port)], stderr=subprocess.PIPE, text=True)
    try:
        _read_until(proc.stderr, "Uvicorn running")
        base = f"http://127.0.0.1:{port}"
        assert httpx.get(f"{base}/healthz").json()["status"] == "ok"
        image = sorted((digits_dir / "test" / "2").glob("*.png"))[0]
        r = httpx.post(f"{base}/v1/predict", files={"file": (image.name, image.read_bytes())})
        assert r.status_code == 200 and r.json()["predictions"][0]["label"] in "0123456789"
        r = httpx.post(f"{base}/v1/predict", files={"file": ("a.txt", b"text")})
        assert r.status_code == 415 and "not a readable image" in r.json()["error"]
        assert httpx.get(f"{base}/docs").status_code == 200
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_version():
    assert cli("--version").stdout.startswith("launchml 0.")


@pytest.mark.parametrize("args", [["init", "nope"], ["predict", "missing_dir", "x.png"]])
def test_cli_failures_print_one_clear_line(args):
    proc = cli(*args, check=False)
    assert proc.returncode in (1, 2) and proc.stderr.strip().startswith("error:")
