"""Binary (one sigmoid output, like the article's Keras model) and multiclass (softmax)."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F


class Task:
    name = "task"
    monitor_default = "val_loss"

    def __init__(self, labels: list[str]) -> None:
        self.labels = list(labels)

    @property
    def num_outputs(self) -> int:
        raise NotImplementedError

    def loss(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def probabilities(self, logits: np.ndarray) -> np.ndarray:
        """(N, num_outputs) raw outputs -> (N, num_classes) class probabilities."""
        raise NotImplementedError

    def correct(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def decode(self, logits: np.ndarray, threshold: float | None = None) -> list[dict[str, Any]]:
        """Raw outputs -> [{"label": ..., "probabilities": {label: p}}] per row."""
        probs = self.probabilities(logits)
        idx = self.predict_index(probs, threshold)
        return [
            {
                "label": self.labels[k],
                "probabilities": {
                    lab: round(float(p), 6) for lab, p in zip(self.labels, row, strict=True)
                },
            }
            for k, row in zip(idx, probs, strict=True)
        ]

    def predict_index(self, probs: np.ndarray, threshold: float | None = None) -> np.ndarray:
        return probs.argmax(axis=1)

    def metrics(self, y_true: np.ndarray, raw: np.ndarray,
                threshold: float | None = None) -> dict[str, Any]:
        """The task's metrics from raw model outputs (what evaluate and optimize report)."""
        return classification_metrics(self, y_true, self.probabilities(raw), threshold)


class BinaryTask(Task):
    name = "binary"

    @property
    def num_outputs(self) -> int:
        return 1

    def loss(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return F.binary_cross_entropy_with_logits(logits.float().squeeze(1), target.float())

    def correct(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return ((logits.squeeze(1) > 0).long() == target).sum()

    def probabilities(self, logits: np.ndarray) -> np.ndarray:
        p = 1.0 / (1.0 + np.exp(-np.asarray(logits, dtype=np.float64).reshape(-1)))
        return np.stack([1.0 - p, p], axis=1)

    def predict_index(self, probs: np.ndarray, threshold: float | None = None) -> np.ndarray:
        return (probs[:, 1] >= (0.5 if threshold is None else threshold)).astype(np.int64)


class MulticlassTask(Task):
    name = "multiclass"

    @property
    def num_outputs(self) -> int:
        return len(self.labels)

    def loss(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(logits.float(), target)

    def correct(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return (logits.argmax(1) == target).sum()

    def probabilities(self, logits: np.ndarray) -> np.ndarray:
        z = np.asarray(logits, dtype=np.float64)
        z = z - z.max(axis=1, keepdims=True)
        e = np.exp(z)
        return e / e.sum(axis=1, keepdims=True)


def classification_metrics(
    task: Task, y_true: np.ndarray, probs: np.ndarray, threshold: float | None = None
) -> dict[str, Any]:
    """Accuracy, per-class and macro precision/recall/F1, log loss, ROC AUC, confusion matrix."""
    from sklearn.metrics import (
        accuracy_score,
        confusion_matrix,
        log_loss,
        precision_recall_fscore_support,
        roc_auc_score,
    )

    labels = list(range(len(task.labels)))
    pred = task.predict_index(probs, threshold)
    p, r, f, s = precision_recall_fscore_support(y_true, pred, labels=labels, zero_division=0)
    mp, mr, mf, _ = precision_recall_fscore_support(y_true, pred, labels=labels,
                                                    average="macro", zero_division=0)
    out: dict[str, Any] = {
        "n": int(len(y_true)),
        "accuracy": float(accuracy_score(y_true, pred)),
        "precision_macro": float(mp),
        "recall_macro": float(mr),
        "f1_macro": float(mf),
        "log_loss": float(log_loss(y_true, _clipped(probs), labels=labels)),
        "per_class": {
            name: {"precision": float(p[i]), "recall": float(r[i]), "f1": float(f[i]),
                   "support": int(s[i])}
            for i, name in enumerate(task.labels)
        },
        "confusion_matrix": confusion_matrix(y_true, pred, labels=labels).tolist(),
    }
    present = np.unique(y_true)
    if len(present) == len(labels):
        if len(labels) == 2:  # binary, or categorical with two classes
            out["roc_auc"] = float(roc_auc_score(y_true, probs[:, 1]))
        else:
            out["roc_auc_ovr_macro"] = float(roc_auc_score(y_true, probs, multi_class="ovr",
                                                           labels=labels))
    return out


def _clipped(probs: np.ndarray) -> np.ndarray:
    p = np.clip(probs, 1e-7, 1.0)
    return p / p.sum(axis=1, keepdims=True)
