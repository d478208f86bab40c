"""Small defects a new user found: file modes, all bad images at once, latency spread,
and offline pretrained weights failing at once instead of after a minute of retries."""

from __future__ import annotations

import os
import shutil
import socket
import stat
import sys
import urllib.request
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from PIL import Image

from launchml import DataError, ModelError, RunConfig
from launchml.data import prepare_image_folder
from launchml.data.images import MAX_LISTED_BAD_FILES, decode_files
from launchml.runs import atomic_path, current_umask, save_npy, write_json, write_text

# --- 1. files honour the umask (not mkstemp's 0600) ------------------------------------

posix_only = pytest.mark.skipif(sys.platform == "win32", reason="POSIX file modes")


@pytest.fixture
def umask():
    """``umask(mask)`` sets the process umask for the test; the old one comes back after."""
    old = os.umask(0o022)
    os.umask(old)
    yield os.umask
    os.umask(old)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@posix_only
def test_written_files_honour_the_umask(tmp_path, umask):
    umask(0o022)
    write_text(tmp_path / "a.txt", "x")
    write_json(tmp_path / "b.json", {"a": 1})
    save_npy(tmp_path / "c.npy", np.zeros(3))
    with atomic_path(tmp_path / "d.bin") as tmp:  # what package / ONNX writers use
        shutil.copyfile(tmp_path / "a.txt", tmp)
    for name in ("a.txt", "b.json", "c.npy", "d.bin"):
        assert _mode(tmp_path / name) == 0o644, name
    assert current_umask() == 0o022  # reading it did not change it
    umask(0o077)
    write_text(tmp_path / "private.txt", "x")
    assert _mode(tmp_path / "private.txt") == 0o600
    umask(0o002)
    write_text(tmp_path / "a.txt", "y")  # rewriting takes the current umask too
    assert _mode(tmp_path / "a.txt") == 0o664


@posix_only
def test_umask_is_read_without_proc_too(monkeypatch, umask):
    import launchml.runs as runs

    def no_proc(*args, **kwargs):
        raise OSError("no /proc here")

    monkeypatch.setattr(runs, "open", no_proc, raising=False)
    umask(0o027)
    assert current_umask() == 0o027
    assert current_umask() == 0o027  # the fallback restores the umask it read


# --- 2. on_bad_file: error names every bad file at once ---------------------------------


def _folder(root: Path, spec: dict[str, int]) -> Path:
    rng = np.random.default_rng(0)
    for cls, n in spec.items():
        (root / cls).mkdir(parents=True, exist_ok=True)
        for i in range(n):
            arr = rng.integers(0, 256, size=(12, 14, 3), dtype=np.uint8)
            Image.fromarray(arr).save(root / cls / f"{i}.png")
    return root


def test_every_bad_image_is_reported_in_one_error(tmp_path):
    train = _folder(tmp_path / "train", {"a": 3, "b": 3})
    broken = train / "a" / "broken.jpg"
    broken.write_bytes(b"\xff\xd8\xff\xe0 this is not really a jpeg")
    good = (train / "b" / "0.png").read_bytes()
    cut = train / "b" / "cut.png"
    cut.write_bytes(good[: len(good) // 2])
    text = train / "b" / "notes.png"
    text.write_text("not an image")
    cfg = RunConfig.load({"name": "r", "output_dir": str(tmp_path / "runs"),
                          "data": {"train": str(train), "target_size": [8, 8],
                                   "validation_split": 0.0}})
    with pytest.raises(DataError) as e:
        prepare_image_folder(cfg.data, cfg.run_dir.mkdir(), cfg.seed)
    msg = str(e.value)
    for bad in (broken, cut, text):
        assert str(bad) in msg
    assert "3 image files cannot be read" in msg and "on_bad_file: skip" in msg
    assert "0.png" not in msg


STATE = {"type": "image", "target_size": [8, 8], "color_mode": "rgb",
         "interpolation": "nearest", "rescale": 1 / 255}


def test_a_long_list_of_bad_images_is_capped_with_a_count(tmp_path):
    files = []
    for i in range(MAX_LISTED_BAD_FILES + 5):
        path = tmp_path / f"bad{i:02d}.png"
        path.write_bytes(b"junk")
        files.append(str(path))
    out = np.zeros((len(files), 8, 8, 3), np.uint8)
    with pytest.raises(DataError) as e:
        decode_files(files, STATE, out, "error")
    msg = str(e.value)
    assert f"{len(files)} image files cannot be read" in msg
    assert all(f in msg for f in files[:MAX_LISTED_BAD_FILES])
    assert files[MAX_LISTED_BAD_FILES] not in msg and "and 5 more" in msg
    # skip: every bad file is returned (and listed in the manifest), nothing raised
    _, skipped = decode_files(files, STATE, out, "skip")
    assert [s["file"] for s in skipped] == files


def test_a_single_bad_image_keeps_its_short_message(tmp_path):
    path = tmp_path / "x.png"
    path.write_bytes(b"junk")
    with pytest.raises(DataError, match=r"x\.png' is not a readable image.*Fix: delete or "
                                        r"replace '.*x\.png', or set data\.on_bad_file: skip"):
        decode_files([str(path)], STATE, np.zeros((1, 8, 8, 3), np.uint8), "error")


# --- 3. optimize: batch-1 latency as p50 and p95 over the runs ---------------------------


class _Clock:
    """perf_counter that advances by scripted call durations (ms), one per timed call."""

    def __init__(self, durations_ms: list[float]) -> None:
        self.durations = list(durations_ms)
        self.now = 0.0
        self.started = False

    def __call__(self) -> float:
        if self.started:  # the end of a timed call
            self.now += self.durations.pop(0) / 1000
        self.started = not self.started
        return self.now


def _fake_predictor() -> SimpleNamespace:
    task = SimpleNamespace(metrics=lambda y, logits, threshold: {"accuracy": 1.0})
    return SimpleNamespace(engine="torch", logits=lambda x: np.zeros((len(x["image"]), 2)),
                           task=task, package=SimpleNamespace(threshold=None))


def test_latency_reports_p50_p95_and_runs(monkeypatch):
    from launchml.optimize import onnx_variants as ov

    durations = [1.0] * 18 + [9.0, 11.0]  # a noisy machine: two slow calls in 20
    monkeypatch.setattr(ov.time, "perf_counter", _Clock(durations))
    inputs = {"image": np.zeros((4, 8, 8, 3), np.uint8)}
    cfg = ov.OptimizeConfig(latency_runs=len(durations))
    row, _ = ov._measure(_fake_predictor(), inputs, np.zeros(4), 10, cfg, None)
    assert row["latency_runs"] == 20
    assert row["latency_ms_p50"] == pytest.approx(1.0)
    assert row["latency_ms_p95"] == pytest.approx(np.percentile(durations, 95), abs=1e-3)
    assert row["latency_ms_p95"] > 5  # the spread a single median hid
    assert row["latency_ms_batch1"] == row["latency_ms_p50"]  # the old key, for old readers


def test_latency_table_prints_p50_and_p95(monkeypatch, capsys):
    from launchml.optimize import onnx_variants as ov

    monkeypatch.setenv("LAUNCHML_QUIET", "0")
    row = {"size_bytes": 2e6, "size_ratio": 1.0, "latency_ms_batch1": 1.25,
           "latency_ms_p50": 1.25, "latency_ms_p95": 7.5, "latency_runs": 20, "speedup": 1.0,
           "accuracy": 0.9}
    ov._print_table({"pytorch": row, "onnx": {**row, "latency_ms_p95": 3.5,
                                              "max_abs_diff": 1e-6}})
    err = capsys.readouterr().err
    assert "p50" in err and "p95" in err and "20 timed calls" in err
    assert "7.50" in err and "3.50" in err and "1.25" in err


# --- 4. offline pretrained weights: an error at once, no download tried -------------------


@pytest.fixture
def offline(monkeypatch, tmp_path):
    """No network: the quick check fails, any real connection attempt fails the test,
    and the Hugging Face cache is an empty folder."""
    import huggingface_hub.constants as hub

    from launchml.models import timm_family

    for var in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setattr(hub, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(hub, "HF_HUB_CACHE", str(tmp_path / "hf-cache"))
    monkeypatch.setattr(hub, "ENDPOINT", "https://huggingface.co")
    monkeypatch.setattr(urllib.request, "getproxies", dict)  # a direct connection
    monkeypatch.setattr(timm_family, "_checks", {})
    checked: list[tuple[str, int]] = []

    def unreachable(host, port, timeout):
        checked.append((host, port))
        return False

    monkeypatch.setattr(timm_family, "_can_connect", unreachable)

    def download(*args, **kwargs):
        raise AssertionError("a download was tried although the machine is offline")

    monkeypatch.setattr(socket, "create_connection", download)
    monkeypatch.setattr(socket, "getaddrinfo", download)
    monkeypatch.setattr(socket.socket, "connect", download)
    return SimpleNamespace(cache=tmp_path / "hf-cache", checked=checked)


def _timm_model(pretrained):
    from launchml.data.schema import Column, Schema
    from launchml.models import NetworkSpec, create_model
    from launchml.tasks import create_task

    schema = Schema([Column("image", "image", [32, 32, 3]), Column("label", "label", [])],
                    "label", "binary", ["a", "b"])
    return create_model(NetworkSpec(name="timm:resnet10t", pretrained=pretrained), schema,
                        create_task("binary", ["a", "b"]), {"image": {"rescale": 1 / 255}})


def test_timm_pretrained_offline_fails_at_once(offline):
    with pytest.raises(ModelError, match=r"offline: no connection to huggingface\.co:443 .*"
                                         r"not in the local cache.*local file"):
        _timm_model(True)
    with pytest.raises(ModelError, match="offline"):  # a hub name
        _timm_model("timm/resnet10t.c3_in1k")
    assert offline.checked == [("huggingface.co", 443)]  # checked once, then remembered


def test_timm_pretrained_offline_still_loads_cached_weights(offline):
    import timm
    from safetensors.torch import save_file

    donor = timm.create_model("resnet10t")
    commit = "0123456789abcdef0123456789abcdef01234567"
    repo = offline.cache / "models--timm--resnet10t.c3_in1k"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(commit)
    (repo / "snapshots" / commit).mkdir(parents=True)
    save_file(donor.state_dict(), str(repo / "snapshots" / commit / "model.safetensors"))
    model = _timm_model(True)
    stem = dict(model.net.named_parameters())["conv1.0.weight"]
    assert torch.equal(stem, donor.state_dict()["conv1.0.weight"])


def test_hf_hub_offline_is_offline_without_a_network_check(monkeypatch):
    from launchml.models import timm_family

    def never(*args):
        raise AssertionError("HF_HUB_OFFLINE says offline: no network check is needed")

    monkeypatch.setattr(timm_family, "_checks", {})
    monkeypatch.setattr(timm_family, "_can_connect", never)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert timm_family.offline_reason() == "HF_HUB_OFFLINE is set"


def test_text_encoder_hub_name_offline_fails_at_once(offline):
    from launchml.models import MLPConfig
    from launchml.models.encoders import build_encoder

    state = {"type": "text", "pretrained": "no-such-org/no-such-model", "pad_id": 0}
    with pytest.raises(ModelError, match=r"'no-such-org/no-such-model' could not be loaded "
                                         r"\(offline: no connection.*local folder"):
        build_encoder("review", state, MLPConfig(text_encoder="transformer"))


def test_text_encoder_from_a_local_folder_needs_no_network(offline, tmp_path):
    from launchml.models import MLPConfig
    from launchml.models.encoders import build_encoder
    from tests.tables_data import SAMPLE_REVIEWS, save_tiny_bert

    folder = save_tiny_bert(tmp_path / "bert", SAMPLE_REVIEWS)
    state = {"type": "text", "pretrained": str(folder), "pad_id": 0}
    enc = build_encoder("review", state, MLPConfig(text_encoder="transformer"))
    assert enc.out_dim == 32 and offline.checked == []


def _listening() -> socket.socket:
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    return server


def test_network_check_connects_to_the_proxy_when_one_is_set(monkeypatch):
    from launchml.models import timm_family

    monkeypatch.setattr(timm_family, "_checks", {})
    monkeypatch.setattr(timm_family, "_hub_endpoint", lambda: "https://hub.invalid")
    for var in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):
        monkeypatch.delenv(var, raising=False)
    import huggingface_hub.constants as hub

    monkeypatch.setattr(hub, "HF_HUB_OFFLINE", False)
    with _listening() as proxy:
        port = proxy.getsockname()[1]
        monkeypatch.setattr(urllib.request, "getproxies",
                            lambda: {"https": f"http://127.0.0.1:{port}"})
        monkeypatch.setattr(urllib.request, "proxy_bypass", lambda host: False)
        assert timm_family.offline_reason() is None  # the proxy answers: online
    monkeypatch.setattr(timm_family, "_checks", {})
    # the proxy is gone: its port refuses connections
    assert timm_family.offline_reason() == f"no connection to 127.0.0.1:{port} within 2 s"
