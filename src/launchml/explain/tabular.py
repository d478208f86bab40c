"""Table explanations beyond the Shapley engine: LightGBM's exact TreeSHAP for a lone
LightGBM, and global importance (mean |contribution|, permutation importance)."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from launchml.deploy.predictor import Predictor


def tree_shap(predictor: Predictor, arrays: dict[str, np.ndarray], cols: list[str],
              groups: dict[str, list[str]]) -> tuple[np.ndarray, np.ndarray]:
    """(N x outputs x columns contributions, N x outputs expected values) from LightGBM's
    ``pred_contrib``; a column's parts (``age``, ``age:missing``) are summed."""
    member = predictor._model.members[0]
    model = member.model
    booster = model.booster_
    contrib = booster.predict(model._matrix(arrays), pred_contrib=True,
                              num_iteration=booster.best_iteration or None)
    n, f = len(contrib), len(model.feature_names_)
    per = np.asarray(contrib, dtype=np.float64).reshape(n, -1, f + 1)  # N x outputs x (F+1)
    phi = np.zeros((n, per.shape[1], len(cols)))
    for j, c in enumerate(cols):
        idx = [model.feature_names_.index(k) for k in groups[c] if k in model.feature_names_]
        if idx:
            phi[:, :, j] = per[:, :, idx].sum(2)
    return phi, per[:, :, -1]


def mean_abs(explanations: list[Any]) -> dict[str, float]:
    """Global importance: the mean |contribution| of each column over explained rows."""
    total: dict[str, list[float]] = {}
    for e in explanations:
        for c, _, w in e.contributions:
            total.setdefault(c, []).append(abs(w))
    return dict(sorted(((c, float(np.mean(v))) for c, v in total.items()),
                       key=lambda kv: -kv[1]))


def permutation_importance(predictor: Predictor, arrays: dict[str, np.ndarray], y: np.ndarray,
                           *, repeats: int = 3, seed: int = 0, max_rows: int = 2000
                           ) -> dict[str, Any]:
    """How much the task's loss (log loss; mean squared error for regression) grows when one
    column's values are shuffled across rows (all its parts together), mean of ``repeats``
    shuffles, on at most ``max_rows`` rows drawn at random."""
    from launchml.explain.core import column_keys
    from launchml.models.linear_family import validation_loss

    start = time.perf_counter()
    rng = np.random.default_rng(seed)
    n = len(y)
    if n > max_rows:
        pick = np.sort(rng.choice(n, max_rows, replace=False))
        arrays, y, n = {k: v[pick] for k, v in arrays.items()}, y[pick], max_rows
    task = predictor.task
    base = validation_loss(task, y, predictor.logits(arrays))
    groups = column_keys(predictor.package.preprocessing, arrays)
    out = {}
    for col, keys in groups.items():
        if not keys:
            continue
        drops = []
        for _ in range(repeats):
            perm = rng.permutation(n)
            shuffled = {**arrays, **{k: np.asarray(arrays[k])[perm] for k in keys}}
            drops.append(validation_loss(task, y, predictor.logits(shuffled)) - base)
        out[col] = float(np.mean(drops))
    return {"loss": "log loss" if task.name != "regression" else "mean squared error",
            "base_loss": float(base), "rows": int(n), "repeats": repeats,
            "seconds": time.perf_counter() - start,
            "importance": dict(sorted(out.items(), key=lambda kv: -kv[1]))}
