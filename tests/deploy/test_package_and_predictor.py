from __future__ import annotations

import json
import zipfile

import numpy as np
import pytest
from PIL import Image

import launchml
from launchml import InputError, PackageError
from launchml.deploy.package import load_package


def test_package_contents(digits_run):
    model = digits_run.dir.model
    assert {p.name for p in model.iterdir()} == {"package.json", "weights.safetensors",
                                                 "model.onnx"}
    meta = json.loads((model / "package.json").read_text())
    assert meta["format_version"] == 2 and meta["task"]["name"] == "multiclass"
    assert meta["task"]["labels"] == [str(i) for i in range(10)]
    assert meta["preprocessing"]["image"] == {"type": "image", "target_size": [24, 24],
                                              "color_mode": "grayscale",
                                              "interpolation": "bilinear",
                                              "rescale": pytest.approx(1 / 255),
                                              "channels": 1, "mean": [0.0], "std": [1.0]}
    # one package shape for every kind: the network is the one member
    assert meta["model"] == {"name": "seed_cnn", "members": [{
        "family": "seed_cnn", "weight": 1.0, "files": {"weights": "weights.safetensors"},
        "network": {"name": "seed_cnn", "pretrained": False, "dropout": 0.0},
        "column": "image"}]}
    assert meta["inputs"][0]["shape"] == [24, 24, 1]
    assert meta["metrics"]["evaluation"]["accuracy"] > 0.8
    assert set(meta["metrics"]["variants"]) == {"pytorch", "onnx", "int8"}
    assert meta["provenance"]["versions"]["torch"]
    assert meta["provenance"]["data_fingerprint"] == digits_run.prepared.manifest["fingerprint"]


def test_format_1_image_package_is_upgraded_on_load(digits_run, digits_dir, tmp_path):
    """A package written before the one-stack format (one network, no members) still
    loads and predicts the same."""
    import shutil

    old = tmp_path / "old"
    shutil.copytree(digits_run.dir.model, old)
    meta = json.loads((old / "package.json").read_text())
    meta["format_version"] = 1
    meta["data_kind"] = meta.pop("source")
    meta["model"] = meta["model"]["members"][0]["network"]
    del meta["preprocessing"]["image"]["channels"]
    (old / "package.json").write_text(json.dumps(meta))
    files = sorted((digits_dir / "test" / "3").glob("*.png"))[:4]
    new = launchml.load(digits_run.dir.model)
    assert launchml.load(old).predict_rows(files) == new.predict_rows(files)
    assert load_package(old).meta["model"]["members"][0]["family"] == "seed_cnn"


def test_predict_paths_folders_pil_and_arrays(digits_run, digits_dir):
    predictor = launchml.load(digits_run.dir.model)
    files = sorted((digits_dir / "test" / "7").glob("*.png"))[:5]
    rows = predictor.predict_rows([str(f) for f in files])
    assert [r["input"] for r in rows] == [str(f) for f in files]
    assert sum(r["label"] == "7" for r in rows) >= 4
    assert all(abs(sum(r["probabilities"].values()) - 1) < 1e-4 for r in rows)
    pil = [Image.open(f) for f in files]
    arrays = np.stack([np.asarray(p) for p in pil])  # (N, 8, 8) raw digits, resized inside
    by_pil = predictor.predict_rows(pil)
    by_array = predictor.predict_rows(list(arrays))
    assert [r["label"] for r in by_pil] == [r["label"] for r in rows] == [
        r["label"] for r in by_array]
    folder_rows = predictor.predict_rows(digits_dir / "test" / "7")
    assert len(folder_rows) == len(list((digits_dir / "test" / "7").glob("*.png")))


def test_onnx_engine_agrees_with_torch(digits_run, digits_dir):
    files = sorted((digits_dir / "test" / "1").glob("*.png"))[:8]
    torch_rows = launchml.load(digits_run.dir.model, engine="torch").predict_rows(files)
    onnx_rows = launchml.load(digits_run.dir.model, engine="onnx").predict_rows(files)
    for a, b in zip(torch_rows, onnx_rows, strict=True):
        assert a["label"] == b["label"]
        for k in a["probabilities"]:
            assert abs(a["probabilities"][k] - b["probabilities"][k]) < 1e-4


def test_loading_never_unpickles(digits_run, monkeypatch):
    import pickle

    def refuse(*a, **k):
        raise AssertionError("a package load unpickled something")

    monkeypatch.setattr(pickle, "load", refuse)
    monkeypatch.setattr(pickle, "loads", refuse)
    monkeypatch.setattr("torch.load", refuse)
    rows = launchml.load(digits_run.dir.model).predict_rows([np.zeros((8, 8), dtype=np.uint8)])
    assert rows[0]["label"] in [str(i) for i in range(10)]
    assert not zipfile.is_zipfile(digits_run.dir.model / "weights.safetensors")


def test_bad_packages_and_inputs(digits_run, tmp_path):
    with pytest.raises(PackageError, match="not a launchml model package"):
        launchml.load(tmp_path)
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    meta = json.loads((digits_run.dir.model / "package.json").read_text())
    meta["format_version"] = 99
    (pkg / "package.json").write_text(json.dumps(meta))
    with pytest.raises(PackageError, match="pip install -U launchml"):
        load_package(pkg)
    del meta["format_version"]
    (pkg / "package.json").write_text(json.dumps(meta))
    with pytest.raises(PackageError, match="cannot upgrade"):
        load_package(pkg)
    (pkg / "package.json").write_text("[1, 2]")
    with pytest.raises(PackageError, match="not a launchml package"):
        load_package(pkg)
    predictor = launchml.load(digits_run.dir.model)
    with pytest.raises(InputError, match="not a readable image"):
        predictor.predict_rows(b"plain text, not an image")
    with pytest.raises(InputError, match="does not exist"):
        predictor.predict_rows(tmp_path / "missing.png")
    with pytest.raises(InputError, match="'upload.txt' is not a readable image"):
        predictor.predict_rows([b"nope"], names=["upload.txt"])
    with pytest.raises(launchml.ConfigError, match="engine"):
        launchml.load(digits_run.dir.model, engine="tensorrt")


def test_a_run_directory_loads_as_its_package(digits_run):
    assert launchml.load(digits_run.dir.root).package.path == digits_run.dir.model


def test_zip_package_round_trip(digits_run, digits_dir, tmp_path):
    from launchml.deploy.package import export_zip

    z = export_zip(digits_run.dir.model, tmp_path / "digits.zip")
    files = sorted((digits_dir / "test" / "5").glob("*.png"))[:4]
    folder = launchml.load(digits_run.dir.model)
    assert launchml.load(z).predict_rows(files) == folder.predict_rows(files)
    assert launchml.load(z, engine="onnx").package.onnx_path is not None
    evil = tmp_path / "evil.zip"
    with zipfile.ZipFile(evil, "w") as zf:
        zf.writestr("../package.json", "{}")
    with pytest.raises(PackageError, match="not a plain file name"):
        launchml.load(evil)
    (tmp_path / "broken.zip").write_bytes(b"not a zip")
    with pytest.raises(PackageError, match="not a valid zip"):
        launchml.load(tmp_path / "broken.zip")
