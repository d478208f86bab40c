"""The tuned binary threshold and class weights, on breast cancer and hand-made cases."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from launchml import ConfigError
from launchml.tasks import (
    THRESHOLD_METRICS,
    BinaryTask,
    MulticlassTask,
    RegressionTask,
    balanced_class_weights,
    tune_threshold,
)


def _score(metric: str, y: np.ndarray, p: np.ndarray, t: float) -> float:
    """The metric at threshold ``t``, written out (checked against scikit-learn below)."""
    pred = p >= t
    tp, fp = np.sum(pred & (y == 1)), np.sum(pred & (y == 0))
    fn, tn = np.sum(~pred & (y == 1)), np.sum(~pred & (y == 0))
    if metric == "accuracy":
        return float((tp + tn) / len(y))
    if metric == "f1":
        return float(2 * tp / (2 * tp + fp + fn)) if tp else 0.0
    return float((tp / (tp + fn) + tn / (tn + fp)) / 2)


def test_scores_agree_with_scikit_learn(validation_probs):
    from sklearn.metrics import accuracy_score, balanced_accuracy_score, f1_score

    y, p = validation_probs
    for t in (0.3, 0.5, 0.62):
        pred = (p >= t).astype(int)
        assert _score("accuracy", y, p, t) == pytest.approx(accuracy_score(y, pred))
        assert _score("f1", y, p, t) == pytest.approx(f1_score(y, pred))
        assert _score("balanced_accuracy", y, p, t) == pytest.approx(
            balanced_accuracy_score(y, pred))


@pytest.fixture(scope="module")
def validation_probs() -> tuple[np.ndarray, np.ndarray]:
    """A deliberately weak model's P(benign) on breast-cancer rows it did not see."""
    from sklearn.datasets import load_breast_cancer
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import train_test_split

    x, y = load_breast_cancer(return_X_y=True)
    x = x[:, [1, 4, 9]]  # texture, smoothness, fractal dimension: uninformative on purpose
    x_tr, x_va, y_tr, y_va = train_test_split(x, y, test_size=0.5, random_state=0, stratify=y)
    model = LogisticRegression(max_iter=2000).fit(x_tr, y_tr)
    return y_va, model.predict_proba(x_va)[:, 1]


@pytest.mark.parametrize("metric", THRESHOLD_METRICS)
def test_tuned_threshold_is_never_worse_than_one_half(metric, validation_probs):
    y, p = validation_probs
    t = tune_threshold(y, p, metric)
    assert 0.0 < t < 1.0
    assert _score(metric, y, p, t) >= _score(metric, y, p, 0.5)
    grid = np.linspace(0.0, 1.0, 501)  # no threshold anywhere does better
    assert _score(metric, y, p, t) >= max(_score(metric, y, p, g) for g in grid) - 1e-12
    assert tune_threshold(y, p, metric) == t  # deterministic


def test_balanced_accuracy_threshold_moves_on_imbalanced_data(validation_probs):
    y, p = validation_probs
    t = tune_threshold(y, p, "balanced_accuracy")
    assert _score("balanced_accuracy", y, p, t) > _score("balanced_accuracy", y, p, 0.5)


def test_threshold_candidates_and_ties():
    y = np.array([0, 0, 1, 1])
    # every threshold in (0.2, 0.8) separates perfectly: 0.5 itself wins the tie
    assert tune_threshold(y, np.array([0.1, 0.2, 0.8, 0.9]), "accuracy") == 0.5
    # separable only between 0.6 and 0.7: the midpoint
    assert tune_threshold(y, np.array([0.1, 0.6, 0.7, 0.9]), "f1") == pytest.approx(0.65)
    # two equally good cuts, 0.3 and 0.7 (equidistant from 0.5): the lower one
    assert tune_threshold(np.array([0, 1, 0, 1]), np.array([0.2, 0.4, 0.6, 0.8]),
                          "accuracy") == pytest.approx(0.3)
    assert tune_threshold(y, np.full(4, 0.3), "f1") == 0.5  # one distinct value
    with pytest.raises(ConfigError, match="accuracy, f1, balanced_accuracy"):
        tune_threshold(y, np.full(4, 0.3), "auc")


def test_balanced_class_weights_match_scikit_learn():
    from sklearn.utils.class_weight import compute_class_weight

    y = np.array([0] * 70 + [1] * 20 + [2] * 10)
    expected = compute_class_weight("balanced", classes=np.arange(3), y=y)
    np.testing.assert_allclose(balanced_class_weights(y, 3), expected)
    assert balanced_class_weights(np.array([0, 0, 1, 1]), 2).tolist() == [1.0, 1.0]
    assert balanced_class_weights(np.array([0, 0, 1]), 3)[2] == 1.0  # absent class


def test_class_weights_in_the_losses():
    torch.manual_seed(0)
    binary, multi = BinaryTask(["no", "yes"]), MulticlassTask(["a", "b", "c"])
    lb, yb = torch.randn(8, 1), torch.tensor([0, 0, 0, 0, 0, 0, 1, 1])
    lm, ym = torch.randn(8, 3), torch.tensor([0, 0, 0, 0, 1, 1, 2, 0])
    assert binary.class_weights is None and multi.class_weights is None
    # default: exactly today's losses
    assert torch.equal(binary.loss(lb, yb),
                       F.binary_cross_entropy_with_logits(lb.squeeze(1), yb.float()))
    assert torch.equal(multi.loss(lm, ym), F.cross_entropy(lm, ym))
    binary.class_weights = binary.balanced_weights(yb.numpy())  # [8/12, 8/4]
    assert binary.loss(lb, yb).item() == pytest.approx(F.binary_cross_entropy_with_logits(
        lb.squeeze(1), yb.float(), pos_weight=torch.tensor([3.0])).item())
    multi.class_weights = multi.balanced_weights(ym.numpy())
    w = torch.tensor(balanced_class_weights(ym.numpy(), 3), dtype=torch.float32)
    assert multi.loss(lm, ym).item() == pytest.approx(F.cross_entropy(lm, ym, weight=w).item())
    with pytest.raises(ConfigError, match="regression"):
        RegressionTask().balanced_weights(np.zeros(3))
