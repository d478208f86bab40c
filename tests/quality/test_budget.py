"""model: auto within model.time_limit: the recorded durations stay within 10% of it, time
left over goes to a second LightGBM configuration, and the leaderboard grows in the log."""

from __future__ import annotations

import json

import pytest

import launchml
from launchml.deploy.predictor import Predictor


def _wine(tmp_path) -> str:
    from sklearn.datasets import load_wine

    frame = load_wine(as_frame=True).frame
    frame["target"] = frame["target"].map({0: "barolo", 1: "grignolino", 2: "barbera"})
    path = tmp_path / "wine.csv"
    frame.to_csv(path, index=False)
    return str(path)


def _run(tmp_path, name: str, model: dict, train: dict | None = None):
    return launchml.run({"name": name, "output_dir": str(tmp_path),
                         "data": {"train": _wine(tmp_path), "target": "target",
                                  "test_split": 0.2},
                         "model": model, **({"train": train} if train else {})},
                        stages=["prepare", "train"])


@pytest.mark.slow
def test_a_small_time_limit_bounds_the_recorded_train_time(tmp_path, capsys):
    # 5,000 epochs of the mlp would take minutes: the limit must stop it
    run = _run(tmp_path, "bound", {"name": "auto", "time_limit": 10},
               {"epochs": 5000, "patience": None})
    timing = json.loads((run.dir.root / "timing.json").read_text())
    assert timing["time_limit"] == 10
    # prepare and train together, as the run recorded them (not a timer race)
    assert timing["prepare_seconds"] + timing["seconds"] <= 10 * 1.10, timing
    assert timing["train_budget"] == pytest.approx(10 - timing["prepare_seconds"])
    assert sum(timing["families"].values()) + sum(timing["refits"].values()) \
        <= timing["seconds"] + 1e-6
    assert {"lightgbm", "linear"} <= set(timing["families"])


def test_the_numpy_log_loss_is_scikit_learns():
    import numpy as np
    from sklearn.metrics import log_loss

    from launchml.tasks.classification import class_log_loss

    rng = np.random.default_rng(0)
    p = rng.dirichlet([1, 1, 1], 50)
    p[0] = [1.0, 0.0, 0.0]
    y = rng.integers(0, 3, 50)
    y[0] = 2  # a certain, wrong prediction: clipped, not infinite
    ref = log_loss(y, np.clip(p, 1e-7, 1) / np.clip(p, 1e-7, 1).sum(1, keepdims=True),
                   labels=[0, 1, 2])
    assert abs(class_log_loss(y, p, 3) - ref) < 1e-9


@pytest.mark.slow
def test_leftover_time_fits_a_second_lightgbm_and_the_package_serves_it(tmp_path, capsys,
                                                                        monkeypatch):
    monkeypatch.setenv("LAUNCHML_QUIET", "0")  # the progress lines are what is checked
    run = _run(tmp_path, "extra", {"name": "auto", "time_limit": 20,
                                   "families": ["lightgbm"]})
    board = {r["family"]: r for r in json.loads(
        (run.dir.root / "leaderboard.json").read_text())}
    assert "lightgbm_extra" in board and board["lightgbm_extra"]["validation_loss"] > 0
    log = capsys.readouterr()
    text = log.out + log.err
    assert "estimated time" in text and "leaderboard so far: lightgbm" in text
    meta = json.loads((run.model_dir / "package.json").read_text())
    members = [m["family"] for m in meta["model"]["members"]]
    predictor = Predictor.load(run.model_dir)
    from sklearn.datasets import load_wine

    frame = load_wine(as_frame=True).frame.drop(columns="target").head(4)
    assert len(predictor.predict(frame)) == 4
    if "lightgbm_extra" in members:  # its own model files beside the first LightGBM's
        assert (run.model_dir / "model.lgb_extra.txt").exists()


def test_the_ensemble_holds_one_neural_member():
    from launchml.train.select import ensemble_pool

    # two networks, the mlp and a tree model ranked: only the best neural one may join
    ranked = [{"family": "seed_cnn"}, {"family": "lightgbm"}, {"family": "timm:small_resnet"},
              {"family": "mlp"}, {"family": "linear"}]
    assert [r["family"] for r in ensemble_pool(ranked)] == ["seed_cnn", "lightgbm", "linear"]


def test_prepare_time_comes_out_of_the_limit_and_training_keeps_a_floor(capsys):
    from launchml.train.select import MIN_TRAIN_SHARE, train_budget

    assert train_budget(None, 50.0) is None
    assert train_budget(120.0, 0.0) == 120.0  # train alone (--stages train)
    assert train_budget(120.0, 30.0) == 90.0
    assert train_budget(120.0, 115.0) == MIN_TRAIN_SHARE * 120.0
    assert "model.time_limit" in capsys.readouterr().err
