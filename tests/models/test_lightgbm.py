"""LightGBM on real bundled tables, through the table preprocessors; text model, no pickle."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from launchml.data.columns import infer_columns, target_task
from launchml.data.image_folder import stratified_split
from launchml.data.preprocess import fit_table, transform_table
from launchml.models.lightgbm_family import MODEL_FILE, LightGBMModel
from launchml.tasks import create_task


def _split(frame: pd.DataFrame, target: str, classify: bool):
    rng = np.random.default_rng(0)
    labels = frame[target].astype(str).tolist() if classify else ["all"] * len(frame)
    keep, test = stratified_split(labels, 0.25, rng)
    train, valid = stratified_split([labels[i] for i in keep], 0.2, rng)
    rows = np.array(keep)
    return frame.iloc[rows[train]], frame.iloc[rows[valid]], frame.iloc[test]


def _fit(frame: pd.DataFrame, target: str):
    task_name, _ = target_task(frame[target])
    classify = task_name != "regression"
    labels = sorted(frame[target].astype(str).unique()) if classify else []
    task = create_task(task_name, labels)
    train, valid, test = _split(frame, target, classify)
    states = fit_table(infer_columns(train, target=target), train, target)

    def xy(df):
        y = (df[target].astype(str).map(labels.index).to_numpy() if classify
             else df[target].to_numpy(dtype=float))
        return transform_table(states, df), y

    model = LightGBMModel(task).fit(*xy(train), valid=xy(valid))
    x_test, y_test = xy(test)
    return model, task, x_test, y_test


@pytest.mark.parametrize("dataset,target,metric,floor", [
    ("breast_cancer", "target", "accuracy", 0.93),
    ("wine", "target", "accuracy", 0.9),
    ("diabetes", "target", "r2", 0.3),
])
def test_lightgbm_on_bundled_tables(dataset, target, metric, floor, tmp_path):
    import sklearn.datasets as ds

    frame = getattr(ds, f"load_{dataset}")(as_frame=True).frame
    model, task, x_test, y_test = _fit(frame, target)
    raw = model.predict_raw(x_test)
    assert raw.shape == (len(y_test), task.num_outputs)
    assert task.metrics(y_test, raw)[metric] >= floor
    model.save(tmp_path)
    text = (tmp_path / MODEL_FILE).read_text()
    assert text.startswith("tree")  # LightGBM's text format, not a pickle
    again = LightGBMModel.load(tmp_path, task)
    assert np.allclose(again.predict_raw(x_test), raw)


def test_categories_with_missing_and_unseen_values():
    rng = np.random.default_rng(1)
    n = 300
    plan = rng.choice(["basic", "plus", "pro"], n)
    income = rng.normal(50, 10, n)
    churn = ((plan == "basic") & (income < 55)).astype(int)
    frame = pd.DataFrame({"plan": plan, "income": income, "churn": churn})
    frame.loc[::10, "income"] = np.nan
    model, task, x_test, y_test = _fit(frame, "churn")
    assert task.metrics(y_test, model.predict_raw(x_test))["accuracy"] >= 0.85
    assert "plan" in model.feature_names_ and "income:missing" in model.feature_names_
