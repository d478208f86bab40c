"""Tabular quality: launchml against scikit-learn baselines on the same splits.

    python bench/tabular.py                     # all sets, 3 seeds
    python bench/tabular.py --json bench/out/tabular.json

Sets (all ship inside scikit-learn, plus one generated mixed table): breast_cancer
(binary), wine (3 classes), digits as a 64-column table (10 classes), diabetes
(regression), and "credit" (numbers with missing values, categories, booleans,
an imbalanced binary target). Each contender is fit on the same train split and
scored on the same held-out split, for 3 seeds: accuracy (classification) or
R2 (regression), and fit seconds.

Contenders: launchml (``launchml.Classifier`` / ``Regressor``, i.e. the real
prepare and train stages, today LightGBM), scikit-learn's
HistGradientBoosting, and LogisticRegression / Ridge on standardized one-hot
features. The text set and launchml's model selection (``model: auto`` over
several families) are not in this release, so this is a partial benchmark.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn import datasets
from sklearn.compose import make_column_transformer
from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

os.environ.setdefault("LAUNCHML_QUIET", "1")
import launchml  # noqa: E402


def credit(seed: int = 0, n: int = 3000) -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(seed)
    income = rng.lognormal(10.5, 0.5, n)
    debt = rng.uniform(0, 1, n) * income
    plan = rng.choice(["basic", "plus", "pro", "student"], n, p=[0.4, 0.3, 0.2, 0.1])
    owner = rng.choice(["yes", "no"], n)
    logit = -2.5 + 3 * debt / income - 0.5 * (owner == "yes") + 0.8 * (plan == "student")
    y = (rng.uniform(size=n) < 1 / (1 + np.exp(-logit))).astype(int)
    income[rng.uniform(size=n) < 0.1] = np.nan
    return pd.DataFrame({"income": income, "debt": debt, "plan": plan, "owner": owner}), y


def sets() -> dict[str, tuple[pd.DataFrame, np.ndarray, str]]:
    out = {}
    for name in ("breast_cancer", "wine", "digits", "diabetes"):
        X, y = getattr(datasets, f"load_{name}")(return_X_y=True, as_frame=True)
        out[name] = (X, np.asarray(y), "regression" if name == "diabetes" else "classification")
    X, y = credit()
    out["credit"] = (X, y, "classification")
    return out


def _linear(X: pd.DataFrame, kind: str):
    cats = [c for c in X.columns if not pd.api.types.is_numeric_dtype(X[c])]
    nums = [c for c in X.columns if c not in cats]
    prep = make_column_transformer(
        (make_pipeline(SimpleImputer(), StandardScaler()), nums),
        (OneHotEncoder(handle_unknown="ignore"), cats))
    model = LogisticRegression(max_iter=2000) if kind == "classification" else Ridge()
    return make_pipeline(prep, model)


def _hgb(X: pd.DataFrame, kind: str):
    cls = HistGradientBoostingClassifier if kind == "classification" else \
        HistGradientBoostingRegressor
    cats = [c for c in X.columns if not pd.api.types.is_numeric_dtype(X[c])]
    if not cats:
        return cls(random_state=0)
    enc = make_column_transformer(
        (OneHotEncoder(handle_unknown="ignore", sparse_output=False), cats),
        remainder="passthrough")
    return make_pipeline(enc, cls(random_state=0))


def contenders(X: pd.DataFrame, kind: str) -> dict:
    ours = launchml.Classifier if kind == "classification" else launchml.Regressor
    return {"launchml": lambda: ours(seed=0), "hist_gradient_boosting": lambda: _hgb(X, kind),
            "linear": lambda: _linear(X, kind)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    results: dict = {}
    for name, (X, y, kind) in sets().items():
        scores: dict[str, list] = {}
        for seed in range(args.seeds):
            strat = y if kind == "classification" else None
            Xtr, Xte, ytr, yte = train_test_split(X, y, test_size=0.25, random_state=seed,
                                                  stratify=strat)
            for cname, make in contenders(X, kind).items():
                t0 = time.perf_counter()
                model = make().fit(Xtr, ytr)
                fit_s = time.perf_counter() - t0
                scores.setdefault(cname, []).append((model.score(Xte, yte), fit_s))
        metric = "accuracy" if kind == "classification" else "r2"
        results[name] = {c: {metric: float(np.mean([s for s, _ in v])),
                             "std": float(np.std([s for s, _ in v])),
                             "fit_seconds": float(np.mean([t for _, t in v]))}
                         for c, v in scores.items()}
        best_other = max(v[metric] for c, v in results[name].items() if c != "launchml")
        results[name]["launchml_minus_best_baseline"] = results[name]["launchml"][metric] - \
            best_other
        print(f"\n{name} ({metric}, mean of {args.seeds} seeds, 25% held out)")
        for c, v in results[name].items():
            if isinstance(v, dict):
                print(f"  {c:24s} {v[metric]:.4f} +- {v['std']:.4f}   fit {v['fit_seconds']:.2f}s")
        print(f"  launchml - best baseline: {results[name]['launchml_minus_best_baseline']:+.4f}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
