"""Binary (one sigmoid output, like the article's Keras model) and multiclass (softmax).

Also the two helpers that tune a binary model after training: ``tune_threshold``
(the decision threshold that maximizes a metric on validation) and
``balanced_class_weights`` (inverse class frequencies, for ``Task.class_weights``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from launchml.errors import ConfigError

if TYPE_CHECKING:
    import torch

THRESHOLD_METRICS = ("accuracy", "f1", "balanced_accuracy")


class Task:
    name = "task"
    monitor_default = "val_loss"
    # loss weights (None: every row counts the same). Binary and multiclass: one weight per
    # class (``balanced_class_weights``); multilabel: one positive weight per label
    # (``balanced_label_weights``). ``balanced_weights(y)`` gives the right one for the task.
    class_weights: torch.Tensor | None = None
    # the share of each target spread over the other classes (binary: towards 0.5) in the
    # training loss; train.select sets it for auto's small ResNet
    label_smoothing: float = 0.0

    def __init__(self, labels: list[str]) -> None:
        self.labels = list(labels)

    def balanced_weights(self, y: np.ndarray) -> torch.Tensor:
        """The ``class_weights`` that balance the training targets ``y`` for this task."""
        import torch

        return torch.as_tensor(balanced_class_weights(np.asarray(y), len(self.labels)),
                               dtype=torch.float32)

    def _weights(self, like: torch.Tensor) -> torch.Tensor | None:
        import torch

        w = self.class_weights
        return None if w is None else torch.as_tensor(w).to(like.device, torch.float32)

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
        import torch.nn.functional as F

        w = self._weights(logits)
        pos_weight = None if w is None else (w[1] / w[0]).reshape(1)
        target = target.float()
        if self.label_smoothing:
            target = target * (1 - self.label_smoothing) + self.label_smoothing / 2
        return F.binary_cross_entropy_with_logits(logits.float().squeeze(1), target,
                                                  pos_weight=pos_weight)

    def correct(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return ((logits.squeeze(1) > 0).long() == target).sum()

    def probabilities(self, logits: np.ndarray) -> np.ndarray:
        from scipy.special import expit

        p = expit(np.asarray(logits, dtype=np.float64).reshape(-1))  # the one sigmoid
        return np.stack([1.0 - p, p], axis=1)

    def predict_index(self, probs: np.ndarray, threshold: float | None = None) -> np.ndarray:
        return (probs[:, 1] >= (0.5 if threshold is None else threshold)).astype(np.int64)


class MulticlassTask(Task):
    name = "multiclass"

    @property
    def num_outputs(self) -> int:
        return len(self.labels)

    def loss(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        import torch.nn.functional as F

        return F.cross_entropy(logits.float(), target, weight=self._weights(logits),
                               label_smoothing=self.label_smoothing)

    def correct(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return (logits.argmax(1) == target).sum()

    def probabilities(self, logits: np.ndarray) -> np.ndarray:
        from scipy.special import softmax

        return softmax(np.asarray(logits, dtype=np.float64), axis=1)


def classification_metrics(
    task: Task, y_true: np.ndarray, probs: np.ndarray, threshold: float | None = None
) -> dict[str, Any]:
    """Accuracy, per-class and macro precision/recall/F1, log loss, ROC AUC, confusion matrix."""
    from sklearn.metrics import (
        accuracy_score,
        confusion_matrix,
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
        "log_loss": class_log_loss(y_true, probs, len(labels)),
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


def class_log_loss(y_true: np.ndarray, probs: np.ndarray, n_classes: int) -> float:
    """Mean log loss of class probabilities (scikit-learn's ``log_loss``): the one log loss
    of binary and multiclass tasks, in the metrics and in model selection.

    Written with numpy (the same value as ``sklearn.metrics.log_loss`` with
    ``labels=range(n_classes)``, clipped to float64 eps): model selection calls it dozens of
    times per ensemble, where scikit-learn's input checks took 70 ms a call (4 s of a
    4 s time limit on a loaded machine); tests/quality checks both agree."""
    p = np.clip(np.asarray(probs, dtype=np.float64), 1e-7, 1.0)
    p = p / p.sum(axis=1, keepdims=True)
    y = np.asarray(y_true).reshape(-1).astype(np.int64)
    eps = np.finfo(np.float64).eps
    picked = np.clip(p[np.arange(len(y)), y], eps, 1 - eps)
    del n_classes  # the columns of probs are the classes
    return float(-np.mean(np.log(picked)))


def balanced_class_weights(y: np.ndarray, n_classes: int) -> np.ndarray:
    """scikit-learn's ``class_weight='balanced'`` weights, ``n / (k * count)`` per class.

    ``y`` holds class indices 0..n_classes-1; ``k`` counts the classes present in ``y``
    (as in ``LogisticRegression(class_weight='balanced')``), and a class absent from ``y``
    gets 1.0 (it adds no loss term anyway). A balanced set gets all ones.
    """
    from sklearn.utils.class_weight import compute_class_weight

    y = np.asarray(y).reshape(-1).astype(np.int64)
    w = np.ones(n_classes, dtype=np.float64)
    present = np.unique(y)
    if len(present):
        w[present] = compute_class_weight("balanced", classes=present, y=y)
    return w


def tune_threshold(y_true: np.ndarray, p_positive: np.ndarray, metric: str) -> float:
    """The binary decision threshold (predict positive when p >= t) that maximizes ``metric``.

    Candidates are the midpoints between consecutive distinct probabilities, and
    0.5 itself, so the result scores at least as well as 0.5 on these rows. Ties
    go to the threshold closest to 0.5 (then the lower one): deterministic.
    """
    if metric not in THRESHOLD_METRICS:
        raise ConfigError(f"threshold metric must be one of {', '.join(THRESHOLD_METRICS)}; "
                          f"got {metric!r}")
    y = np.asarray(y_true).reshape(-1).astype(np.int64) == 1
    p = np.asarray(p_positive, dtype=np.float64).reshape(-1)
    if len(y) != len(p):
        raise ValueError(f"{len(y)} targets but {len(p)} probabilities")
    u = np.unique(p)
    if len(u) < 2:
        return 0.5
    cand = np.unique(np.append((u[:-1] + u[1:]) / 2.0, 0.5))
    pos, neg = np.sort(p[y]), np.sort(p[~y])
    n_pos, n_neg = len(pos), len(neg)
    tp = n_pos - np.searchsorted(pos, cand, side="left")  # positives with p >= t
    fp = n_neg - np.searchsorted(neg, cand, side="left")
    fn, tn = n_pos - tp, n_neg - fp
    if metric == "accuracy":
        score = (tp + tn) / len(y)
    elif metric == "f1":
        den = 2 * tp + fp + fn
        score = np.divide(2.0 * tp, den, out=np.zeros(len(cand)), where=den > 0)
    else:
        tpr = tp / n_pos if n_pos else np.zeros(len(cand))
        tnr = tn / n_neg if n_neg else np.zeros(len(cand))
        score = (tpr + tnr) / 2.0
    best = np.flatnonzero(score >= score.max() - 1e-12)
    order = np.lexsort((cand[best], np.abs(cand[best] - 0.5)))
    return float(cand[best[order[0]]])
