"""Every task in TASKS: loss, decoding and metrics from raw outputs, checked against values
computed here by hand (numpy), so a wrong loss, a swapped label or a wrong metric fails."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from launchml.tasks import TASKS, create_task

LABELS = {"binary": ["no", "yes"], "multiclass": ["a", "b", "c"], "multilabel": ["x", "y"],
          "regression": []}


def test_every_task_is_covered_here():
    assert set(TASKS) == set(LABELS)
    for name in TASKS:
        assert create_task(name, LABELS[name]).name == name


def _case(name: str, n: int = 8, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(raw outputs N x num_outputs, targets) for a task."""
    task = create_task(name, LABELS[name])
    rng = np.random.default_rng(seed)
    raw = rng.normal(scale=2.0, size=(n, task.num_outputs))
    if name == "regression":
        y = rng.normal(size=n)
    elif name == "multilabel":
        y = rng.integers(0, 2, (n, 2)).astype(np.float32)
    else:
        y = rng.integers(0, len(LABELS[name]), n)
    return raw, y


def _reference_loss(name: str, raw: np.ndarray, y: np.ndarray) -> float:
    if name == "regression":
        return float(np.mean((raw[:, 0] - y) ** 2))
    if name == "multiclass":
        z = raw - raw.max(axis=1, keepdims=True)
        logp = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
        return float(-np.mean(logp[np.arange(len(y)), y]))
    z = raw.reshape(len(y), -1)
    t = np.asarray(y, dtype=np.float64).reshape(z.shape)
    return float(np.mean(np.maximum(z, 0) - z * t + np.log1p(np.exp(-np.abs(z)))))


@pytest.mark.parametrize("name", sorted(TASKS))
def test_loss_matches_the_formula_and_its_gradient_descends(name):
    task = create_task(name, LABELS[name])
    raw, y = _case(name)
    assert raw.shape == (8, {"binary": 1, "multiclass": 3, "multilabel": 2, "regression": 1}[name])
    logits = torch.tensor(raw, dtype=torch.float32, requires_grad=True)
    loss = task.loss(logits, torch.tensor(y))
    assert loss.ndim == 0
    assert loss.item() == pytest.approx(_reference_loss(name, raw, y), rel=1e-5)
    loss.backward()
    assert logits.grad is not None and logits.grad.abs().sum() > 0
    with torch.no_grad():  # a small step against the gradient lowers the loss
        lower = task.loss(logits - 0.05 * logits.grad, torch.tensor(y)).item()
    assert lower < loss.item()


@pytest.mark.parametrize("name", ["binary", "multiclass"])
def test_single_label_decode_picks_the_most_probable_label(name):
    task = create_task(name, LABELS[name])
    raw, _ = _case(name)
    rows = task.decode(raw)
    assert len(rows) == len(raw)
    if name == "binary":
        p_yes = 1 / (1 + np.exp(-raw[:, 0]))
        probs = np.stack([1 - p_yes, p_yes], axis=1)
    else:
        e = np.exp(raw - raw.max(axis=1, keepdims=True))
        probs = e / e.sum(axis=1, keepdims=True)
    for row, p in zip(rows, probs, strict=True):
        assert set(row) == {"label", "probabilities"}
        assert list(row["probabilities"]) == LABELS[name]
        assert list(row["probabilities"].values()) == pytest.approx(p.tolist(), abs=1e-6)
        assert sum(row["probabilities"].values()) == pytest.approx(1.0, abs=1e-5)
        assert row["label"] == LABELS[name][int(p.argmax())]


def test_binary_threshold_moves_the_decision():
    task = create_task("binary", LABELS["binary"])
    raw = np.array([[-2.0], [0.0], [0.4], [3.0]])  # p(yes) = .12, .5, .6, .95
    assert [r["label"] for r in task.decode(raw)] == ["no", "yes", "yes", "yes"]
    assert [r["label"] for r in task.decode(raw, threshold=0.7)] == ["no", "no", "no", "yes"]


def test_multilabel_decode_gives_label_sets():
    task = create_task("multilabel", LABELS["multilabel"])
    rows = task.decode(np.array([[3.0, -3.0], [3.0, 3.0], [-3.0, -3.0]]))
    assert [r["labels"] for r in rows] == [["x"], ["x", "y"], []]
    assert rows[0]["probabilities"]["x"] == pytest.approx(1 / (1 + np.exp(-3.0)), abs=1e-6)


@pytest.mark.parametrize("name", ["binary", "multiclass", "multilabel"])
def test_classification_metrics_from_raw_outputs(name):
    task = create_task(name, LABELS[name])
    raw, y = _case(name, n=12, seed=3)
    m = task.metrics(y, raw)
    assert m["n"] == 12
    if name == "multilabel":
        pred = raw >= 0
        expected = np.mean(np.all(pred == (y >= 0.5), axis=1))
    elif name == "binary":
        expected = np.mean((raw[:, 0] >= 0).astype(int) == y)
    else:
        expected = np.mean(raw.argmax(axis=1) == y)
    assert m["accuracy"] == pytest.approx(expected)
    assert m["log_loss"] == pytest.approx(_reference_loss(name, raw, y), rel=1e-4)
    # outputs that agree with the targets score perfectly, the opposite ones score zero
    if name == "multiclass":
        right = np.eye(3)[y] * 10.0
        wrong = np.eye(3)[(y + 1) % 3] * 10.0
    else:
        sign = (np.asarray(y, dtype=np.float64).reshape(len(y), -1) * 2 - 1)
        right, wrong = sign * 10.0, -sign * 10.0
    assert task.metrics(y, right)["accuracy"] == 1.0
    assert task.metrics(y, wrong)["accuracy"] == 0.0
    assert task.metrics(y, right)["log_loss"] < 1e-3 < task.metrics(y, wrong)["log_loss"]


def test_confusion_matrix_counts_true_rows_by_predicted_columns():
    task = create_task("multiclass", LABELS["multiclass"])
    y = np.array([0, 0, 1, 2, 2, 2])
    raw = np.eye(3)[[0, 1, 1, 2, 2, 0]] * 5.0
    m = task.metrics(y, raw)
    assert m["confusion_matrix"] == [[1, 1, 0], [0, 1, 0], [1, 0, 2]]
    assert m["per_class"]["c"] == pytest.approx(
        {"precision": 1.0, "recall": 2 / 3, "f1": 0.8, "support": 3})


def test_regression_metrics_and_decoding():
    task = create_task("regression")
    y = np.array([1.0, 2.0, 3.0, 4.0])
    m = task.metrics(y, np.array([[1.0], [2.0], [3.0], [5.0]]))
    assert m["n"] == 4
    assert m["rmse"] == pytest.approx(0.5) and m["mae"] == pytest.approx(0.25)
    assert m["r2"] == pytest.approx(1 - 1 / 5)
    assert task.decode(np.array([[2.5], [-1.0]])) == [{"value": 2.5}, {"value": -1.0}]
