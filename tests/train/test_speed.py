"""Speed defaults per CPU capability, and the parallel decode in prepare."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image
from tests.conftest import digits_config

import launchml
from launchml.data.images import decode_files, load_image
from launchml.data.samples import write_shapes_folder
from launchml.train import speed
from launchml.train.config import TrainConfig

AVX2 = {"capability": "AVX2", "avx2": True, "avx512f": False, "avx512_bf16": False,
        "amx_bf16": False, "avx512_vnni": False}
AVX512 = {"capability": "AVX512", "avx2": True, "avx512f": True, "avx512_bf16": False,
          "amx_bf16": False, "avx512_vnni": True}
AVX512_BF16 = {**AVX512, "avx512_bf16": True}
AMX = {**AVX512, "amx_bf16": True}


@pytest.fixture
def cpu(monkeypatch):
    """``cpu(features)``: make the speed defaults see that kind of CPU."""
    def use(features: dict) -> None:
        monkeypatch.setattr(speed, "cpu_features", lambda: dict(features))
    return use


@pytest.mark.parametrize("features,layout", [(AVX2, False), (AVX512, True),
                                             (AVX512_BF16, True)])
def test_channels_last_auto_follows_the_cpu(cpu, features, layout):
    cpu(features)
    assert speed.resolve_channels_last("auto", "cpu", images=True) is layout
    assert speed.resolve_channels_last("auto", "cpu", images=False) is False  # tables: NCHW
    assert speed.resolve_channels_last("auto", "cuda") is True
    assert speed.resolve_channels_last(False, "cpu", images=True) is False  # asked for: kept
    assert speed.resolve_channels_last(True, "cpu") is True


@pytest.mark.parametrize("features,images,expected", [
    (AVX2, True, "fp32"), (AVX512, True, "fp32"),  # emulated bf16: fp32
    (AVX512_BF16, True, "bf16"), (AMX, True, "bf16"),  # native bf16, image network
    (AVX512_BF16, False, "fp32"),  # tables and text stay fp32 on CPUs
])
def test_precision_auto_follows_the_cpu(cpu, features, images, expected):
    cpu(features)
    assert speed.resolve_precision("auto", "cpu", images=images) == expected
    assert speed.resolve_precision("fp32", "cpu", images=images) == "fp32"


def test_bf16_on_an_avx2_cpu_warns_and_is_kept(cpu, capsys):
    cpu(AVX2)
    assert speed.resolve_precision("bf16", "cpu", images=True) == "bf16"
    assert "emulated" in capsys.readouterr().err


def test_cpu_features_name_the_flags():
    f = speed.cpu_features()
    assert set(speed.CPU_FLAGS) <= set(f) and isinstance(f["capability"], str)
    assert speed.cpu_has_native_bf16() == bool(f["avx512_bf16"] or f["amx_bf16"])


def test_settings_record_the_cpu_and_why(cpu):
    cpu(AVX512_BF16)
    s = speed.speed_settings(TrainConfig(num_threads=3), "cpu", images=True)
    assert s["precision"] == "bf16" and s["channels_last"] is True and s["num_threads"] == 3
    assert s["fused_optimizer"] is True
    assert s["cpu_flags"] == {k: AVX512_BF16[k] for k in speed.CPU_FLAGS}
    assert "native bf16" in s["chosen_by"]["precision"]
    assert "AVX512" in s["chosen_by"]["channels_last"]
    fixed = speed.speed_settings(TrainConfig(precision="fp32", channels_last=False), "cpu",
                                 images=True)
    assert fixed["precision"] == "fp32" and fixed["channels_last"] is False
    assert fixed["chosen_by"] == {}  # asked for, not chosen
    table = speed.speed_settings(TrainConfig(), "cpu", images=False)  # tables keep the old
    assert (table["precision"], table["channels_last"], table["fused_optimizer"]) == (
        "fp32", False, False)


def test_events_record_the_speed_settings(digits_dir, tmp_path):
    run = launchml.run(digits_config(digits_dir, tmp_path, epochs=1),
                       stages=["prepare", "train"])
    start = json.loads(run.dir.events.read_text().splitlines()[0])
    settings = start["settings"]
    assert settings.items() <= run.train.settings.items()
    assert set(settings["cpu_flags"]) == set(speed.CPU_FLAGS)
    assert settings["cpu_capability"] == speed.cpu_features()["capability"]
    assert settings["precision"] == speed.resolve_precision("auto", settings["accelerator"],
                                                            images=True)
    assert settings["channels_last"] == speed.resolve_channels_last(
        "auto", settings["accelerator"], images=True)
    assert settings["fused_optimizer"] is True
    assert {"precision", "channels_last"} <= set(settings["chosen_by"])


def test_parallel_decode_gives_the_sequential_bytes(tmp_path):
    root = write_shapes_folder(tmp_path / "shapes", n_train=12, n_test=1, size=40, seed=3)
    files = sorted(str(p) for p in (root / "train").rglob("*.jpg"))
    png = tmp_path / "odd.png"  # another format, mode and size: resized on decode
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (31, 57), np.uint8)).save(png)
    files.append(str(png))
    state = {"target_size": [33, 29], "color_mode": "rgb", "interpolation": "bilinear",
             "rescale": 1 / 255}
    expected = np.stack([load_image(f, state) for f in files])
    for workers in (1, 4, 16):
        out = np.zeros((len(files), 33, 29, 3), np.uint8)
        digests, skipped = decode_files(files, state, out, "error", workers=workers)
        assert skipped == [] and out.tobytes() == expected.tobytes()
        assert len(set(digests)) == len(files) and all(digests)
