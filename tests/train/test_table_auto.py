"""model: auto for tables: families, leaderboard, ensemble, threshold, refit, time limit."""

from __future__ import annotations

import builtins
import json
import pickle

import numpy as np
import pandas as pd
import pytest

import launchml
from launchml.deploy.predictor import Predictor


def _table(tmp_path, name: str, frame: pd.DataFrame) -> str:
    path = tmp_path / f"{name}.csv"
    frame.to_csv(path, index=False)
    return str(path)


@pytest.fixture(scope="module")
def wine_run(tmp_path_factory):
    from sklearn.datasets import load_wine

    tmp = tmp_path_factory.mktemp("wine")
    frame = load_wine(as_frame=True).frame
    frame["target"] = frame["target"].map({0: "barolo", 1: "grignolino", 2: "barbera"})
    return launchml.run({
        "name": "wine", "output_dir": str(tmp),
        "data": {"train": _table(tmp, "wine", frame), "target": "target", "test_split": 0.25},
        "train": {"epochs": 30},
    }), frame


def test_auto_ranks_every_family_and_packages_the_chosen_ones(wine_run):
    run, frame = wine_run
    board = json.loads((run.dir.root / "leaderboard.json").read_text())
    fams = {r["family"]: r for r in board}
    assert {"lightgbm", "linear", "mlp", "ensemble"} <= set(fams)
    for name in ("lightgbm", "linear", "mlp"):
        assert fams[name]["validation_loss"] >= 0 and 0 <= fams[name]["accuracy"] <= 1
        assert fams[name]["fit_seconds"] > 0
    meta = json.loads((run.model_dir / "package.json").read_text())
    members = meta["model"]["members"]
    assert abs(sum(m["weight"] for m in members) - 1) < 1e-6
    best_single = min(fams[n]["validation_loss"] for n in ("lightgbm", "linear", "mlp"))
    if len(members) > 1:  # an ensemble is kept only when it beats the best family
        assert fams["ensemble"]["validation_loss"] < best_single
    assert run.metrics["accuracy"] >= 0.9  # wine is easy; all three families reach it
    rows = run.predictor.predict_rows(frame.drop(columns="target").head(5))
    assert [r["label"] for r in rows] == list(frame["target"].head(5))


PICKLERS = ("pickle", "_pickle", "cloudpickle", "dill", "joblib")


def test_table_package_loads_without_pickle(wine_run, monkeypatch):
    run, frame = wine_run
    x = frame.drop(columns="target").head(20)
    expected = run.predictor.predict_rows(x)
    files = sorted(p.name for p in run.model_dir.rglob("*") if p.is_file())
    assert not [f for f in files if f.endswith((".pkl", ".pickle", ".joblib"))], files
    refused: list[str] = []

    def refuse(*a, **k):
        refused.append("unpickle")
        raise AssertionError("a package must load without pickle")

    # every way to unpickle: the functions, both Unpicklers (joblib and torch.load use
    # them), and importing a pickling module anew
    for name in ("load", "loads", "Unpickler", "_Unpickler", "_load", "_loads"):
        if hasattr(pickle, name):
            monkeypatch.setattr(pickle, name, refuse)
    real_import = builtins.__import__

    def guarded_import(name, *args, **kwargs):
        if name.split(".")[0] in PICKLERS:
            refused.append(name)
            raise AssertionError(f"loading a package imported {name}")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", guarded_import)
    got = Predictor.load(run.model_dir).predict_rows(x)
    monkeypatch.undo()
    assert refused == []
    assert got == expected
    assert [r["label"] for r in got] == list(frame["target"].head(20))


def test_onnx_engine_matches_torch_for_the_neural_member(tmp_path):
    from sklearn.datasets import load_breast_cancer

    frame = load_breast_cancer(as_frame=True).frame.iloc[:300]
    run = launchml.run({
        "name": "bc", "output_dir": str(tmp_path),
        "data": {"train": _table(tmp_path, "bc", frame), "target": "target", "test_split": 0.2},
        "model": {"name": "mlp", "refit": False}, "train": {"epochs": 5},
        "optimize": {"int8": False},
    })
    assert run.variants["onnx"]["max_abs_diff"] < 1e-4
    x = frame.drop(columns="target")
    torch_p = Predictor.load(run.model_dir, engine="torch").predict_rows(x)
    onnx_p = Predictor.load(run.model_dir, engine="onnx").predict_rows(x)
    a = np.array([r["probabilities"]["1"] for r in torch_p])
    b = np.array([r["probabilities"]["1"] for r in onnx_p])
    assert np.abs(a - b).max() < 1e-4
    meta = json.loads((run.model_dir / "package.json").read_text())
    assert meta["task"]["threshold"] is not None  # tuned on validation (binary)
    assert meta["files"]["onnx"] == "model.onnx"


def test_time_limit_skips_the_slow_families_and_says_so(tmp_path):
    from sklearn.datasets import load_diabetes

    frame = load_diabetes(as_frame=True).frame
    run = launchml.run({
        "name": "d", "output_dir": str(tmp_path),
        "data": {"train": _table(tmp_path, "d", frame), "target": "target"},
        "model": {"time_limit": 1e-3},
    }, stages=["prepare", "train"])
    board = json.loads((run.dir.root / "leaderboard.json").read_text())
    assert board[0]["family"] == "lightgbm" and "validation_loss" in board[0]
    assert [r.get("skipped") for r in board[1:]] == ["time limit reached"] * 2
    assert run.predictor.predict_rows(frame.drop(columns="target").head(1))[0]["value"] > 0


def test_linear_family_alone_regression_and_refit(tmp_path):
    from sklearn.datasets import load_diabetes

    frame = load_diabetes(as_frame=True).frame
    run = launchml.run({
        "name": "r", "output_dir": str(tmp_path),
        "data": {"train": _table(tmp_path, "r", frame), "target": "target", "test_split": 0.25},
        "model": {"name": "linear"},
    })
    assert run.metrics["r2"] > 0.35  # ridge on diabetes: ~0.45
    meta = json.loads((run.model_dir / "package.json").read_text())
    assert [m["family"] for m in meta["model"]["members"]] == ["linear"]
    assert (run.model_dir / "model.linear.safetensors").exists()
    assert "weights" not in {k for k, v in meta["files"].items() if v}


def test_balanced_class_weight_raises_minority_recall(tmp_path):
    rng = np.random.default_rng(0)
    n = 1200
    x = rng.normal(size=(n, 3))
    y = (x[:, 0] + 0.8 * rng.normal(size=n) > 1.6).astype(int)  # ~7% positives
    frame = pd.DataFrame(x, columns=["a", "b", "c"]).assign(y=np.where(y, "yes", "no"))
    path = _table(tmp_path, "imb", frame)
    recall = {}
    for weight in ("none", "balanced"):
        run = launchml.run({
            "name": weight, "output_dir": str(tmp_path),
            "data": {"train": path, "target": "y", "test_split": 0.3},
            "model": {"name": "linear", "class_weight": weight, "threshold": "none"},
            "optimize": {"onnx": False, "int8": False},
        })
        recall[weight] = run.metrics["per_class"]["yes"]["recall"]
    assert recall["balanced"] > recall["none"]


def test_model_that_does_not_fit_the_data_is_a_clear_error(tmp_path):
    frame = pd.DataFrame({"a": np.arange(40) % 7, "b": np.arange(40) % 3,
                          "y": ["x", "y"] * 20})
    with pytest.raises(launchml.ConfigError, match="model.families: unknown"):
        launchml.run({"name": "e", "output_dir": str(tmp_path),
                      "data": {"train": _table(tmp_path, "e", frame), "target": "y"},
                      "model": {"families": ["xgboost"]}}, stages=["prepare", "train"])


def test_evaluating_a_refit_model_on_validation_is_marked_in_sample(tmp_path):
    from sklearn.datasets import load_wine

    frame = load_wine(as_frame=True).frame
    run = launchml.run({
        "name": "w", "output_dir": str(tmp_path),
        "data": {"train": _table(tmp_path, "w", frame), "target": "target", "test_split": 0.0},
        "model": {"name": "linear"},
    })
    assert run.metrics["split"] == "validation" and run.metrics["in_sample"] is True


def test_a_time_limited_epoch_ends_after_the_current_batch(tmp_path):
    """model.time_limit cuts the neural family inside a long epoch, not only at its end."""
    import torch
    from lightning_fabric import Fabric

    from launchml.runs import RunDir
    from launchml.tasks import create_task
    from launchml.train import TrainConfig, Trainer
    from launchml.train.progress import EpochProgress

    calls = []

    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.linear = torch.nn.Linear(3, 1)

        def forward(self, numbers):
            calls.append(len(numbers))
            return self.linear(numbers)

    trainer = Trainer(TrainConfig(batch_size=4), run=RunDir(tmp_path), seed=0,
                      resume_key={}, checkpoints=False)
    fabric = Fabric(accelerator="cpu", devices=1)
    net = Net()
    model, opt = fabric.setup(net, torch.optim.SGD(net.parameters(), lr=0.1))
    data = ({"numbers": torch.randn(40, 3)}, torch.randint(0, 2, (40,)))
    task = create_task("binary", ["a", "b"])
    out = trainer.train_loop(fabric, model, opt, None, task, data, 1, EpochProgress(1, 40),
                             deadline=0.0)  # long past: one batch, then stop
    assert calls == [4] and out["train_loss"] > 0
    calls.clear()
    trainer.train_loop(fabric, model, opt, None, task, data, 2, EpochProgress(1, 40))
    assert calls == [4] * 10  # without a deadline: the whole epoch
