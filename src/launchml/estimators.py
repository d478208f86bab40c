"""scikit-learn-style estimators over the table pipeline.

    from sklearn.model_selection import cross_val_score
    cross_val_score(launchml.Classifier(), X, y, cv=5)

``fit`` runs the real prepare and train stages on the data (written to a
private temporary run), so the estimator and ``launchml run`` share every line
of preprocessing and training. The constructor only stores its arguments, so
``clone`` and ``get_params`` work as scikit-learn expects; scikit-learn's
``check_estimator`` passes but for the deviations listed, with their reasons, in
tests/test_estimators.py (EXPECTED_FAILED_CHECKS). Errors name ``X`` and ``y``, never
the private table's columns.
"""

from __future__ import annotations

import datetime
import numbers
import re
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin

from launchml.data.columns import category_key
from launchml.errors import LaunchmlError

TARGET = "__launchml_target__"  # y's column in the private table; errors say "y" instead
MIN_ROWS = 2  # one to train on and one to validate the fit on
# what a table cell may hold besides a missing value (None, NaN, NaT, pd.NA)
_CELL = (str, numbers.Number, np.bool_, datetime.date, datetime.time, np.datetime64)
_INTERNAL = re.compile(r"(target column |the target |a target )?\(?'?__(launchml_)?target__'?\)?")


def _frame(X: Any, what: str = "X") -> pd.DataFrame:
    """X as a DataFrame with string column names (arrays: x0, x1, ...)."""
    from scipy import sparse

    if sparse.issparse(X):
        raise TypeError(f"{what} is a sparse matrix; launchml estimators take dense data "
                        "(a DataFrame or a 2-D array). Fix: pass X.toarray().")
    if isinstance(X, pd.DataFrame):
        df = X.reset_index(drop=True)
        df.columns = [str(c) for c in df.columns]  # 0, 1 -> '0', '1', as the package stores
        if df.columns.duplicated().any():
            dup = df.columns[df.columns.duplicated()][0]
            raise ValueError(f"{what} has two columns named {dup!r}; names must be unique.")
        return df
    arr = np.asarray(X)
    if arr.ndim != 2:
        raise ValueError(f"{what} must be 2-D (rows x columns); got shape {arr.shape}. Reshape "
                         "your data with X.reshape(-1, 1) if it is one feature or "
                         "X.reshape(1, -1) if it is one row.")
    if arr.dtype.kind == "c":
        raise ValueError(f"Complex data not supported: {what} holds complex numbers.")
    return pd.DataFrame(arr, columns=_array_names(arr.shape[1]))


def _array_names(n: int) -> list[str]:
    return [f"x{i}" for i in range(n)]


def _cells(df: pd.DataFrame) -> pd.DataFrame:
    """Object columns made storable: a value that is no string, number, date or missing
    value is a TypeError naming it; a column mixing kinds (text and numbers) becomes text."""
    out = df
    for col in df.columns[(df.dtypes == "object").to_numpy()]:
        values = df[col]
        present = ~values.isna().to_numpy()
        types = set(values[present].map(type))
        bad = [t for t in types if not issubclass(t, _CELL) or issubclass(t, complex)]
        if bad:
            i = int(np.flatnonzero(present & values.map(type).isin(bad).to_numpy())[0])
            v = values.iat[i]
            raise TypeError(f"X column {col!r} holds {v!r} (a {type(v).__name__}) in row {i}: "
                            "a table cell holds a string, a number, a boolean, a date or "
                            "nothing.")
        kinds = {str if issubclass(t, str) else datetime.date
                 if issubclass(t, datetime.date | datetime.time | np.datetime64)
                 else numbers.Number for t in types}
        if len(kinds) > 1:  # e.g. 'a' and 1.5: a stored column holds one type
            out = df.copy() if out is df else out
            out[col] = [str(v) if ok else None for v, ok in zip(values, present, strict=True)]
    return out


def _y_named(e: LaunchmlError) -> LaunchmlError:
    """The error with the private target column and table named as the caller knows them."""
    msg = _INTERNAL.sub("y", str(e))
    msg = re.sub(r"(data\.train: )?'[^']*launchml-fit-[^']*'", "X", msg)
    return type(e)(msg)


class _TableEstimator(BaseEstimator):
    _task_type = "classification"

    def __init__(self, *, model: str = "auto", time_limit: float | None = None,
                 validation_split: float = 0.2, column_types: dict[str, str] | None = None,
                 seed: int = 42, verbose: int = 0) -> None:
        self.model = model
        self.time_limit = time_limit
        self.validation_split = validation_split
        self.column_types = column_types
        self.seed = seed
        self.verbose = verbose  # 0: quiet inside cross-validation and searches; 1: progress

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = True  # a missing value is data: each column type fills it
        tags.input_tags.string = True  # text and category columns
        return tags

    def _target(self, y: Any) -> np.ndarray:
        """y as a 1-D array, checked the way scikit-learn checks it (its wording)."""
        from sklearn.utils.validation import column_or_1d

        if y is None:
            raise ValueError(f"{type(self).__name__} requires y to be passed, but the target "
                             "y is None.")
        return column_or_1d(y, warn=True)  # a column vector: DataConversionWarning

    def fit(self, X: Any, y: Any) -> _TableEstimator:
        from launchml.console import verbosity
        from launchml.deploy.predictor import Predictor
        from launchml.pipeline import run

        df = _frame(X)
        target = self._target(y)
        if df.shape[1] == 0:
            raise ValueError(f"X has 0 feature(s) (shape={df.shape}) while a minimum of 1 is "
                             "required.")
        if len(target) != len(df):
            raise ValueError(f"X has {len(df)} rows but y has {len(target)}")
        if len(df) < MIN_ROWS:
            raise ValueError(f"X has {len(df)} sample(s) (shape={df.shape}) while a minimum "
                             f"of {MIN_ROWS} is required (rows to train on and to validate).")
        target = self._check_target(target)
        df = _cells(df)
        self.feature_names_in_ = np.array(df.columns, dtype=object)
        self.n_features_in_ = df.shape[1]
        if self._task_type == "classification":
            self.classes_ = np.unique(target)
            self._by_name = {category_key(c): c for c in self.classes_}
            df[TARGET] = [category_key(v) for v in target]
        else:
            df[TARGET] = target
        with tempfile.TemporaryDirectory(prefix="launchml-fit-") as tmp, \
                verbosity(self.verbose):
            path = Path(tmp) / "train.parquet"
            df.to_parquet(path)
            try:
                result = run({
                    "name": "estimator", "output_dir": tmp, "seed": self.seed,
                    "data": {"train": str(path), "target": TARGET, "task": self._task_type,
                             "test_split": 0.0,  # the caller holds out its own test rows
                             "validation_split": self.validation_split,
                             "column_types": self.column_types or {}},
                    "model": {"name": self.model, **({"time_limit": self.time_limit}
                                                      if self.time_limit is not None else {})},
                }, stages=["prepare", "train"])
            except LaunchmlError as e:  # name y, not the private table's target column
                raise _y_named(e).with_traceback(e.__traceback__) from None
            self.predictor_ = Predictor.load(result.model_dir)  # loaded into memory
        return self

    def _rows(self, X: Any) -> list[dict[str, Any]]:
        from sklearn.utils.validation import check_is_fitted

        check_is_fitted(self, "predictor_")  # NotFittedError, as scikit-learn raises
        df, names = _frame(X), list(self.feature_names_in_)
        if isinstance(X, pd.DataFrame) and (set(names) <= set(df.columns)
                                            or names != _array_names(len(names))):
            return self.predictor_.predict_rows(df)  # columns matched by name
        # an array (or a frame after fitting on an array): columns by position
        if df.shape[1] != self.n_features_in_:
            raise ValueError(f"X has {df.shape[1]} features, but {type(self).__name__} is "
                             f"expecting {self.n_features_in_} features as input.")
        df.columns = names
        return self.predictor_.predict_rows(df)


class Classifier(ClassifierMixin, _TableEstimator):
    """Binary or multiclass classification of table rows."""

    _task_type = "classification"

    def _check_target(self, y: np.ndarray) -> np.ndarray:
        from sklearn.utils.multiclass import check_classification_targets

        missing = np.flatnonzero(pd.isna(y))
        if len(missing):
            raise ValueError(f"Input y contains NaN: {len(missing)} row(s) have no class, "
                             f"first row {int(missing[0])}. Fix: drop those rows or fill them.")
        check_classification_targets(y)  # 'Unknown label type: continuous' for a regression y
        if len(np.unique(y)) < 2:
            raise ValueError(f"y has 1 class ({y[0]!r}); a classifier needs two or more.")
        return y

    def predict_proba(self, X: Any) -> np.ndarray:
        rows = self._rows(X)
        return np.array([[r["probabilities"][category_key(c)] for c in self.classes_]
                         for r in rows])

    def predict(self, X: Any) -> np.ndarray:
        return np.array([self._by_name[r["label"]] for r in self._rows(X)])


class Regressor(RegressorMixin, _TableEstimator):
    """Regression of a numeric target."""

    _task_type = "regression"

    def _check_target(self, y: np.ndarray) -> np.ndarray:
        from sklearn.utils.validation import check_array

        y = check_array(y, ensure_2d=False, dtype=np.float64, input_name="y")  # NaN, inf
        if np.ptp(y) == 0:
            raise ValueError(f"y has one value ({y[0]:g}) in every row; there is nothing to "
                             "learn.")
        return y

    def predict(self, X: Any) -> np.ndarray:
        return np.array([r["value"] for r in self._rows(X)])
