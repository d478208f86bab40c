"""model.cv_folds: on small tables auto ranks the families, weighs the ensemble and tunes
the threshold on k-fold out-of-fold predictions over train + validation, then refits on
all of them; larger tables and other column types keep the validation split."""

from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np
import pytest

import launchml
from launchml.errors import ConfigError
from launchml.tasks import create_task
from launchml.train import select


def _cfg(folds=None, refit=True, seed=0):
    return SimpleNamespace(seed=seed, model=SimpleNamespace(cv_folds=folds, refit=refit))


def _data(n, n_valid, classes=2):
    y = np.arange(n) % classes
    return ({"x": np.arange(n, dtype=np.float32)}, y[: n - n_valid]), \
        ({"x": np.arange(n - n_valid, n, dtype=np.float32)}, y[n - n_valid:])


NUMBERS = {"x": {"type": "number"}}
FAMS = ["lightgbm", "linear", "mlp"]


def test_folds_cover_every_train_and_validation_row_once_stratified():
    train, valid = _data(300, 60)
    task = create_task("binary", ["a", "b"])
    folds = select.cv_folds(_cfg(), NUMBERS, train, valid, FAMS, task)
    assert len(folds) == select.CV_FOLDS
    held = np.concatenate([h for _, h in folds])
    assert sorted(held) == list(range(300))  # every row held out exactly once
    y = np.arange(300) % 2
    for fit_rows, h in folds:
        assert not set(fit_rows) & set(h)
        assert abs(y[h].mean() - 0.5) < 0.05  # stratified


@pytest.mark.parametrize("case", ["large", "text", "one_family", "off", "no_refit"])
def test_the_validation_split_is_kept_where_folds_do_not_apply(case):
    task = create_task("binary", ["a", "b"])
    n = select.CV_MAX_ROWS + 1 if case == "large" else 300
    train, valid = _data(n, n // 5)
    states = {"x": {"type": "text"}} if case == "text" else NUMBERS
    names = FAMS[:1] if case == "one_family" else FAMS
    cfg = _cfg(folds=0 if case == "off" else None, refit=case != "no_refit")
    assert select.cv_folds(cfg, states, train, valid, names, task) is None


def test_folds_can_be_asked_for_on_any_table_and_rare_classes_stay_in_every_fit():
    task = create_task("multiclass", ["a", "b", "c"])
    train, valid = _data(3000, 600, classes=3)
    folds = select.cv_folds(_cfg(folds=3), {"x": {"type": "text"}}, train, valid, FAMS, task)
    assert len(folds) == 3
    y = np.r_[np.zeros(50), np.ones(48), np.full(2, 2)]  # class 2: 2 rows < 5 folds
    train = ({"x": np.zeros(80)}, y[:80])
    valid = ({"x": np.zeros(20)}, y[80:])
    folds = select.cv_folds(_cfg(), NUMBERS, train, valid, FAMS, task)
    assert len(folds) == 5
    for fit_rows, _ in folds:  # every fold's model sees every class (3 outputs, not 2)
        assert set(y[fit_rows]) == {0, 1, 2}


@pytest.mark.parametrize("case", ["single_row_class", "tiny", "multilabel"])
def test_folds_that_cannot_work_fall_back_and_say_so_when_asked_for(case, capsys):
    if case == "multilabel":
        task = create_task("multilabel", ["a", "b"])
        train, valid = _data(300, 60)
        train = (train[0], np.stack([train[1], 1 - train[1]], 1))
        valid = (valid[0], np.stack([valid[1], 1 - valid[1]], 1))
    else:
        task = create_task("multiclass", ["a", "b", "c"])
        n = 12 if case == "tiny" else 100
        y = np.r_[np.arange(n - 1) % 2, 2]  # single_row_class: one row of class 2
        v = n // 5
        train, valid = ({"x": np.zeros(n - v)}, y[:n - v]), ({"x": np.zeros(v)}, y[n - v:])
    assert select.cv_folds(_cfg(), NUMBERS, train, valid, FAMS, task) is None
    assert capsys.readouterr().err == ""  # the default says nothing
    assert select.cv_folds(_cfg(folds=5), NUMBERS, train, valid, FAMS, task) is None
    assert "model.cv_folds 5 does not apply" in capsys.readouterr().err


def test_one_fold_is_refused_by_name():
    with pytest.raises(ConfigError, match="cv_folds"):
        launchml.run({"name": "x", "data": {"train": "t.csv", "target": "y"},
                      "model": {"cv_folds": 1}}, stages=[])


class _Spy:
    """A family that predicts each row's id and records what it was fit on."""

    seen: list = []

    def __init__(self, ctx):
        self.ctx = ctx

    def fit(self, train, valid):
        _Spy.seen.append((set(train[0]["id"].tolist()), self.ctx.time_limit))
        return self

    def predict_raw(self, arrays):
        return arrays["id"].astype(np.float64).reshape(-1, 1)


def test_each_row_is_predicted_by_the_fold_model_that_did_not_see_it(monkeypatch):
    monkeypatch.setattr(select, "create_family", lambda name, ctx: _Spy(ctx))
    _Spy.seen = []
    n = 100
    pooled = ({"id": np.arange(n)}, np.arange(n) % 2)
    folds = select.cv_folds(_cfg(), NUMBERS, (pooled[0], pooled[1]),
                            ({"id": np.arange(0)}, np.arange(0)), FAMS,
                            create_task("binary", ["a", "b"]))
    ctx = SimpleNamespace(time_limit=50.0, single=True)
    import dataclasses

    monkeypatch.setattr(dataclasses, "replace", lambda c, **kw: SimpleNamespace(
        **{**vars(c), **kw}))
    fam, oof = select.fit_folds("linear", ctx, pooled, folds)
    assert oof[:, 0].tolist() == list(range(n))  # every row's own prediction, in order
    for (fit_ids, limit), (_, held) in zip(_Spy.seen, folds, strict=True):
        assert not fit_ids & set(held.tolist())  # never by a model that saw it
        assert limit == 10.0  # the family's time shared by the 5 folds
    assert fam.ctx is ctx  # the refit runs with the family's own time


@pytest.mark.slow
def test_breast_cancer_is_ranked_out_of_fold_and_refit_on_all_rows(tmp_path):
    from sklearn.datasets import load_breast_cancer

    frame = load_breast_cancer(as_frame=True).frame
    path = tmp_path / "bc.csv"
    frame.to_csv(path, index=False)
    run = launchml.run({"name": "bc", "output_dir": str(tmp_path), "seed": 0,
                        "data": {"train": str(path), "target": "target", "test_split": 0.25},
                        "model": {"families": ["lightgbm", "linear"]}},
                       stages=["prepare", "train", "evaluate"])
    board = json.loads((run.dir.root / "leaderboard.json").read_text())
    assert {r["family"]: r.get("validation") for r in board if r["family"] != "ensemble"} \
        == {"lightgbm": "5-fold out-of-fold", "linear": "5-fold out-of-fold"}
    timing = json.loads((run.dir.root / "timing.json").read_text())
    assert timing["selection"] == "5-fold cross-validation"
    members = json.loads((run.model_dir / "package.json").read_text())["model"]["members"]
    assert set(timing["refits"]) == {m["family"] for m in members}  # refit on all rows
    assert run.metrics["accuracy"] >= 0.94
