"""MultilabelTask: loss, exact-match counting, decoding and metrics against scikit-learn."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from launchml.data.schema import Column, Prepared, Schema, Split
from launchml.runs import RunDir
from launchml.tasks import TASKS, MultilabelTask, balanced_label_weights, create_task

LABELS = ["cat", "dog", "bird"]


def _data(n: int = 200, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = (rng.random((n, 3)) < [0.5, 0.3, 0.1]).astype(np.float32)
    raw = (y * 2 - 1) * rng.gamma(2.0, 1.0, (n, 3)) + rng.normal(0, 1.5, (n, 3))
    return y, raw


def test_registered_with_one_output_per_label():
    task = create_task("multilabel", LABELS)
    assert TASKS["multilabel"] is MultilabelTask and task.num_outputs == 3


def test_loss_and_exact_match():
    task = MultilabelTask(LABELS)
    logits = torch.tensor([[2.0, -1.0, -3.0], [0.5, 0.5, -0.5], [-1.0, 1.0, 1.0]])
    target = torch.tensor([[1.0, 0.0, 0.0], [1.0, 0.0, 0.0], [0.0, 1.0, 1.0]])
    assert task.loss(logits, target) == F.binary_cross_entropy_with_logits(logits, target)
    assert task.correct(logits, target).item() == 2  # the middle row has one label wrong


def test_decode_with_default_and_given_threshold():
    task = MultilabelTask(LABELS)
    raw = np.array([[2.0, 0.0, -2.0], [-3.0, -3.0, -3.0]])
    rows = task.decode(raw)
    assert rows[0]["labels"] == ["cat", "dog"]  # p = 0.5 counts
    assert rows[0]["probabilities"] == {"cat": 0.880797, "dog": 0.5, "bird": 0.119203}
    assert rows[1] == {"labels": [], "probabilities": {k: 0.047426 for k in LABELS}}
    assert task.decode(raw, threshold=0.1)[0]["labels"] == LABELS
    assert task.probabilities(raw).shape == (2, 3)
    assert task.decode(np.zeros((0, 3))) == []


def test_metrics_match_scikit_learn():
    from sklearn.metrics import (
        accuracy_score,
        f1_score,
        hamming_loss,
        log_loss,
        precision_recall_fscore_support,
        roc_auc_score,
    )

    y, raw = _data()
    task = MultilabelTask(LABELS)
    m = task.metrics(y, raw)
    probs = 1 / (1 + np.exp(-raw))
    pred = (probs >= 0.5).astype(int)
    assert m["n"] == 200
    assert m["accuracy"] == pytest.approx(accuracy_score(y, pred))  # subset accuracy
    assert m["f1_micro"] == pytest.approx(f1_score(y, pred, average="micro"))
    assert m["f1_macro"] == pytest.approx(f1_score(y, pred, average="macro"))
    assert m["hamming_loss"] == pytest.approx(hamming_loss(y, pred))
    bce = np.mean([log_loss(y[:, k], probs[:, k]) for k in range(3)])
    assert m["log_loss"] == pytest.approx(bce, rel=1e-6)
    assert m["roc_auc_macro"] == pytest.approx(roc_auc_score(y, probs, average="macro"))
    p, r, f, s = precision_recall_fscore_support(y, pred, zero_division=0)
    assert m["per_label"]["dog"] == pytest.approx(
        {"precision": p[1], "recall": r[1], "f1": f[1], "support": s[1]})
    strict = task.metrics(y, raw, threshold=0.9)
    assert strict["per_label"]["cat"]["precision"] >= m["per_label"]["cat"]["precision"]
    y[:, 2] = 0  # a label without positives is left out of the macro ROC AUC
    assert task.metrics(y, raw)["roc_auc_macro"] == pytest.approx(
        roc_auc_score(y[:, :2], probs[:, :2], average="macro"))


def test_balanced_label_weights_in_the_loss():
    y = np.array([[1, 0, 1], [0, 0, 1], [0, 1, 1], [0, 0, 1]], dtype=np.float32)
    w = balanced_label_weights(y)
    assert w.tolist() == [3.0, 3.0, 1.0]  # negatives / positives; no negatives: 1
    task = MultilabelTask(LABELS)
    logits = torch.randn(4, 3)
    target = torch.from_numpy(y)
    plain = task.loss(logits, target)
    task.class_weights = task.balanced_weights(y)
    expected = F.binary_cross_entropy_with_logits(logits, target,
                                                  pos_weight=torch.tensor([3.0, 3.0, 1.0]))
    assert task.loss(logits, target) == pytest.approx(expected.item())
    assert task.loss(logits, target) != plain


def test_the_torch_training_loop_learns_a_multilabel_target(tmp_path):
    from launchml.train.trainer import TrainConfig, Trainer

    class Linear(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc = torch.nn.Linear(4, 3)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.fc(x)

    rng = np.random.default_rng(0)
    x = rng.normal(size=(256, 4)).astype(np.float32)
    y = np.stack([x[:, 0] > 0, x[:, 1] + x[:, 2] > 0, x[:, 3] > 1], axis=1).astype(np.float32)
    schema = Schema([Column("x", "number", [4], "float32"), Column("t", "target", [3], "float32")],
                    target="t", task="multilabel", labels=LABELS)
    prepared = Prepared(schema, {"train": Split("train", {"x": x[:200], "t": y[:200]}),
                                 "validation": Split("validation", {"x": x[200:], "t": y[200:]})},
                        preprocessing={}, manifest={})
    cfg = TrainConfig(epochs=15, batch_size=32, learning_rate=0.05, accelerator="cpu",
                      num_threads=1)
    result = Trainer(cfg, run=RunDir(tmp_path), seed=0, resume_key={}).fit(
        Linear(), MultilabelTask(LABELS), prepared)
    last = result.history[-1]
    assert last["val_loss"] < result.history[0]["val_loss"]
    assert last["train_accuracy"] > 0.8 and 0 <= last["val_accuracy"] <= 1
