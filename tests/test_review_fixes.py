"""Regression tests for defects found in review of the table families work."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

import launchml
from launchml.deploy.predictor import Predictor

pytestmark = pytest.mark.usefixtures("one_thread")


def _cancer(tmp_path, rows: int = 120) -> str:
    from sklearn.datasets import load_breast_cancer

    path = tmp_path / "bc.csv"
    load_breast_cancer(as_frame=True).frame.iloc[:rows].to_csv(path, index=False)
    return str(path)


def test_table_variant_serves_with_engine_auto_and_rerun_drops_stale_variants(tmp_path):
    """variants/onnx of a table (no weights file) loads with engine 'auto' (what
    `launchml serve` and `launchml predict` default to); a later run of the same
    name whose model has no neural member must not ship the old ONNX/variant metrics."""
    path = _cancer(tmp_path)
    cfg = {"name": "bc", "output_dir": str(tmp_path / "runs"),
           "data": {"train": path, "target": "target", "test_split": 0.2},
           "model": {"name": "mlp", "hidden": [16]}, "train": {"epochs": 1},
           "optimize": {"int8": False, "latency_runs": 1}}
    run = launchml.run(cfg)
    x = pd.read_csv(path).drop(columns="target").head(4)
    variant = run.dir.variants / "onnx"
    auto = Predictor.load(variant)
    assert auto.engine == "onnx"
    assert auto.predict_rows(x) == Predictor.load(variant, engine="onnx").predict_rows(x)

    # a second run of a trained table run is refused (it once replaced the model silently)
    with pytest.raises(launchml.RunError, match="already has a trained model"):
        launchml.run({**cfg, "model": {"name": "lightgbm"}})
    assert (run.model_dir / "weights.safetensors").exists()
    again = launchml.run({**cfg, "model": {"name": "lightgbm"}}, overwrite=True)
    meta = json.loads((again.model_dir / "package.json").read_text())
    assert [m["family"] for m in meta["model"]["members"]] == ["lightgbm"]
    assert meta["files"]["onnx"] is None
    assert "variants" not in meta["metrics"]
    # a replaced package keeps no file of the model it replaced
    assert sorted(p.name for p in again.model_dir.iterdir()) == [
        "model.lgb.features.json", "model.lgb.txt", "package.json"]


@pytest.mark.slow
def test_pretrained_image_encoder_normalization_survives_the_package(tmp_path):
    """A table image column with pretrained timm weights normalizes with their
    mean/std in training; the package must rebuild it with the same ones."""
    import timm
    import torch
    from safetensors.torch import save_file

    from launchml.config import RunConfig
    from launchml.models.families import FitContext, MLPFamily, TorchMember
    from launchml.runs import RunDir
    from launchml.tasks import create_task

    weights = tmp_path / "w.safetensors"
    net = timm.create_model("test_efficientnet", num_classes=64, in_chans=3)
    save_file({k: v.contiguous() for k, v in net.state_dict().items()}, str(weights))
    cfg = RunConfig.load({
        "name": "img", "output_dir": str(tmp_path),
        "data": {"train": "unused.csv", "target": "y"},
        "model": {"name": "mlp", "image_encoder": "timm:test_efficientnet",
                  "pretrained": str(weights), "hidden": [8]},
        "train": {"epochs": 1, "batch_size": 8}})
    states = {"photo": {"type": "image", "target_size": [16, 16], "color_mode": "rgb",
                        "channels": 3, "interpolation": "bilinear", "rescale": 1 / 255,
                        "mean": [0.5] * 3, "std": [0.5] * 3}}
    rng = np.random.default_rng(0)
    arrays = {"photo": rng.integers(0, 255, (16, 16, 16, 3), dtype=np.uint8)}
    y = np.arange(16) % 2
    task = create_task("binary", ["a", "b"])
    torch.manual_seed(0)
    fam = MLPFamily(FitContext(task=task, states=states, cfg=cfg,
                               run=RunDir(tmp_path / "run"))).fit((arrays, y), None)
    folder = tmp_path / "model"
    folder.mkdir()
    spec = fam.save(folder)
    assert states["photo"]["mean"] != [0.5] * 3  # the weights' own (ImageNet) mean
    member = TorchMember(folder, json.loads(json.dumps(spec)), task, states)
    np.testing.assert_allclose(member.predict_raw(arrays), fam.predict_raw(arrays), atol=1e-5)


def test_fit_does_not_silently_replace_an_earlier_run(tmp_path):
    rng = np.random.default_rng(0)
    a = pd.DataFrame({"x": rng.normal(size=80)})
    a["y"] = np.where(a.x > 0, "pos", "neg")
    b = pd.DataFrame({"u": rng.normal(size=80)})
    b["z"] = b.u * 3
    out = str(tmp_path / "runs")
    first = launchml.fit(a, target="y", output_dir=out, model="linear")
    # unnamed, as in a notebook: a second fit makes a second folder (AutoGluon does too)
    second = launchml.fit(b, target="z", output_dir=out, model="linear")
    assert second.dir.root.name == "dataframe-2" and first.dir.root.name == "dataframe"
    assert first.predictor.task.name == "binary"
    assert second.predictor.task.name == "regression"
    with pytest.raises(launchml.RunError, match="already holds a trained model"):
        launchml.fit(b, target="z", output_dir=out, model="linear", name="dataframe")
    assert launchml.fit(b, target="z", output_dir=out, model="linear", name="dataframe",
                        overwrite=True).predictor.task.name == "regression"


def test_fit_a_dataframe_with_image_paths_relative_to_the_working_folder(tmp_path, monkeypatch):
    from tests.tables_data import image_table

    monkeypatch.chdir(tmp_path)
    frame = pd.read_csv(image_table(tmp_path, n=40))  # photo: images/<i>.png, from the cwd
    run = launchml.fit(frame, target="label", model="lightgbm", output_dir="runs")
    saved = pd.read_parquet(run.dir.root / "data" / "train.parquet")
    assert saved["photo"].iloc[0] == str((tmp_path / "images" / "0.png").resolve())
    # the right files were read: bright squares prepared bright, dark ones dark
    pixels = np.load(run.dir.prepared / "train.photo.npy")
    names = np.array(run.predictor.task.labels)[np.load(run.dir.prepared /
                                                        "train.__target__.npy")]
    means = pixels.reshape(len(pixels), -1).mean(axis=1)
    assert len(means) > 20 and {"bright", "dark"} == set(names)
    assert means[names == "bright"].min() > 140 and means[names == "dark"].max() < 110
    rows = run.predictor.predict_rows(frame.drop(columns="label").head(2))
    assert len(rows) == 2 and {r["label"] for r in rows} <= {"bright", "dark"}
    assert frame["photo"].iloc[0] == "images/0.png"  # the caller's DataFrame is untouched
