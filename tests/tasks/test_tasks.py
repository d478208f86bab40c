"""Every task in TASKS: loss, decoding and metrics from raw outputs."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from launchml.tasks import TASKS, create_task

LABELS = {"binary": ["no", "yes"], "multiclass": ["a", "b", "c"], "multilabel": ["x", "y"],
          "regression": []}


@pytest.mark.parametrize("name", sorted(TASKS))
def test_task_conformance(name):
    task = create_task(name, LABELS[name])
    rng = np.random.default_rng(0)
    raw = rng.normal(size=(6, task.num_outputs)).astype(np.float32)
    y = (rng.normal(size=6) if name == "regression"
         else rng.integers(0, 2, (6, 2)).astype(np.float32) if name == "multilabel"
         else rng.integers(0, max(len(LABELS[name]), 2), 6))
    target = torch.tensor(y)
    loss = task.loss(torch.from_numpy(raw).requires_grad_(), target)
    assert loss.ndim == 0 and torch.isfinite(loss)
    rows = task.decode(raw)
    assert len(rows) == 6
    metrics = task.metrics(y, raw)
    assert metrics["n"] == 6


def test_regression_metrics_and_decoding():
    task = create_task("regression")
    y = np.array([1.0, 2.0, 3.0, 4.0])
    m = task.metrics(y, np.array([[1.0], [2.0], [3.0], [5.0]]))
    assert m["rmse"] == pytest.approx(0.5) and m["mae"] == pytest.approx(0.25)
    assert m["r2"] == pytest.approx(1 - 1 / 5)
    assert task.decode(np.array([[2.5]])) == [{"value": 2.5}]
