"""scikit-learn-style estimators over the table pipeline.

    from sklearn.model_selection import cross_val_score
    cross_val_score(launchml.Classifier(), X, y, cv=5)

``fit`` runs the real prepare and train stages on the data (written to a
private temporary run), so the estimator and ``launchml run`` share every line
of preprocessing and training. The constructor only stores its arguments, so
``clone`` and ``get_params`` work as scikit-learn expects.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin

from launchml.data.columns import category_key

TARGET = "__launchml_target__"


def _frame(X: Any) -> pd.DataFrame:
    if isinstance(X, pd.DataFrame):
        return X.reset_index(drop=True)
    arr = np.asarray(X)
    if arr.ndim != 2:
        raise ValueError(f"X must be 2-D (rows x columns); got shape {arr.shape}")
    return pd.DataFrame(arr, columns=[f"x{i}" for i in range(arr.shape[1])])


class _TableEstimator(BaseEstimator):
    _task_kind = "classification"

    def __init__(self, *, model: str = "auto", time_limit: float | None = None,
                 validation_split: float = 0.2, column_types: dict[str, str] | None = None,
                 seed: int = 42, verbose: int = 0) -> None:
        self.model = model
        self.time_limit = time_limit
        self.validation_split = validation_split
        self.column_types = column_types
        self.seed = seed
        self.verbose = verbose  # 0: quiet inside cross-validation and searches; 1: progress

    def fit(self, X: Any, y: Any) -> _TableEstimator:
        from launchml.console import verbosity
        from launchml.deploy.predictor import Predictor
        from launchml.pipeline import run

        df = _frame(X)
        target = np.asarray(y)
        if target.ndim == 2 and target.shape[1] == 1:  # a column vector, as sklearn accepts
            target = target.ravel()
        if len(target) != len(df):
            raise ValueError(f"X has {len(df)} rows but y has {len(target)}")
        self.feature_names_in_ = np.array(df.columns, dtype=object)
        self.n_features_in_ = df.shape[1]
        if self._task_kind == "classification":
            self.classes_ = np.unique(target)
            self._by_name = {category_key(c): c for c in self.classes_}
            df[TARGET] = [category_key(v) for v in target]
        else:
            df[TARGET] = target.astype(float)
        with tempfile.TemporaryDirectory(prefix="launchml-fit-") as tmp, \
                verbosity(self.verbose):
            path = Path(tmp) / "train.parquet"
            df.to_parquet(path)
            result = run({
                "name": "estimator", "output_dir": tmp, "seed": self.seed,
                "data": {"train": str(path), "target": TARGET, "task": self._task_kind,
                         "test_split": 0.0,  # the caller holds out its own test rows
                         "validation_split": self.validation_split,
                         "column_types": self.column_types or {}},
                "model": {"name": self.model, **({"time_limit": self.time_limit}
                                                  if self.time_limit is not None else {})},
            }, stages=["prepare", "train"])
            self.predictor_ = Predictor.load(result.model_dir)  # loaded into memory
        return self

    def _rows(self, X: Any) -> list[dict[str, Any]]:
        from sklearn.utils.validation import check_is_fitted

        check_is_fitted(self, "predictor_")  # NotFittedError, as scikit-learn raises
        return self.predictor_.predict_rows(_frame(X))


class Classifier(ClassifierMixin, _TableEstimator):
    """Binary or multiclass classification of table rows."""

    _task_kind = "classification"

    def predict_proba(self, X: Any) -> np.ndarray:
        rows = self._rows(X)
        return np.array([[r["probabilities"][category_key(c)] for c in self.classes_]
                         for r in rows])

    def predict(self, X: Any) -> np.ndarray:
        return np.array([self._by_name[r["label"]] for r in self._rows(X)])


class Regressor(RegressorMixin, _TableEstimator):
    """Regression of a numeric target."""

    _task_kind = "regression"

    def predict(self, X: Any) -> np.ndarray:
        return np.array([r["value"] for r in self._rows(X)])
