"""Per-column preprocessors for tables: fitted on the training split only,
saved as JSON state (into package.json), applied identically in training,
``predict`` and the server.

    state = fit_column(info, train_df[col])        # JSON-able dict
    arrays = transform_column(state, df[col])      # {name: np.ndarray}

number    median-imputed, standardized float32, plus a 0/1 missing indicator
category  int64 codes by training frequency (0 = missing or unseen, capped at
          MAX_CATEGORIES with the rest as one 'other' code)
boolean   float32 0/1, missing as 0.5
datetime  float32 features: year, month, day, weekday, hour, and days since
          the training minimum (missing: training medians)
Text, image, molecule and protein columns have their own tokenizers/decoders.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from launchml.data.columns import (
    _BOOL_WORDS,
    MAX_CATEGORIES,
    ColumnInfo,
    category_key,
    parse_dates,
    parse_numbers,
)
from launchml.errors import DataError, InputError

_TRUE = {"true", "yes", "y", "t", "1"}
_DATE_PARTS = ("year", "month", "day", "weekday", "hour")


def numbers(col: pd.Series, name: str) -> np.ndarray:
    """float64 values; a non-number is an error naming the column and the data row."""
    values = parse_numbers(col)
    bad = col.notna() & values.isna()
    if bad.any():
        pos = int(np.flatnonzero(bad.to_numpy())[0])
        raise InputError(f"column '{name}' (number): data row {col.index[pos]} holds "
                         f"{col.iloc[pos]!r}, which is not a number (decimal point '.', "
                         "thousands ','). Fix: correct the value or leave it empty.")
    return values.to_numpy(dtype=np.float64)



def fit_column(info: ColumnInfo, col: pd.Series) -> dict[str, Any]:
    """Learn one column's preprocessing state from the training rows."""
    kind = info.type
    if kind == "number":
        x = numbers(col, info.name)
        finite = x[~np.isnan(x)]
        median = float(np.median(finite)) if finite.size else 0.0
        std = float(finite.std()) if finite.size > 1 else 1.0
        return {"type": kind, "median": median, "mean": float(finite.mean()) if finite.size
                else 0.0, "std": std if std > 0 else 1.0}
    if kind == "category":
        counts = col.dropna().map(category_key).value_counts(sort=True)
        kept = counts.index[:MAX_CATEGORIES].tolist()
        return {"type": kind, "categories": kept, "other": len(counts) > MAX_CATEGORIES}
    if kind == "boolean":
        return {"type": kind}
    if kind == "datetime":
        d = parse_dates(col).dropna()
        if d.empty:
            raise DataError(f"column '{info.name}' (datetime) has no parseable dates in train")
        parts = {p: float(getattr(d.dt, p if p != "weekday" else "dayofweek").median())
                 for p in _DATE_PARTS}
        days = (d - d.min()).dt.total_seconds() / 86400.0
        parts["days"] = float(days.median())
        return {"type": kind, "origin": d.min().isoformat(), "medians": parts}  # UTC, no zone
    raise DataError(f"column '{info.name}': type '{kind}' has no table preprocessor")


def transform_column(name: str, state: dict[str, Any], col: pd.Series) -> dict[str, np.ndarray]:
    """Apply a fitted state; the arrays are named '<column>' or '<column>:<part>'."""
    kind = state["type"]
    if kind == "number":
        x = numbers(col, name)
        missing = np.isnan(x)
        x = np.where(missing, state["median"], x)
        return {name: ((x - state["mean"]) / state["std"]).astype(np.float32),
                f"{name}:missing": missing.astype(np.float32)}
    if kind == "category":
        index = {c: i + 1 for i, c in enumerate(state["categories"])}
        other = len(index) + 1 if state["other"] else 0
        codes = col.map(lambda v: 0 if pd.isna(v) else index.get(category_key(v), other))
        return {name: codes.to_numpy(dtype=np.int64)}
    if kind == "boolean":
        def one(v: Any) -> float:
            if pd.isna(v):
                return 0.5
            s = str(v).strip().lower()
            if s in ("1.0", "0.0"):
                s = s[0]
            if s not in _BOOL_WORDS:
                raise InputError(f"column '{name}' (boolean): {v!r} is not true/false/yes/no/"
                                 "1/0. Fix: correct the value or leave it empty.")
            return 1.0 if s in _TRUE else 0.0
        return {name: np.array([one(v) for v in col], dtype=np.float32)}
    if kind == "datetime":
        d = parse_dates(col)
        out = {}
        for p in _DATE_PARTS:
            values = getattr(d.dt, p if p != "weekday" else "dayofweek").astype(float)
            out[f"{name}:{p}"] = values.fillna(state["medians"][p]).to_numpy(dtype=np.float32)
        days = (d - pd.Timestamp(state["origin"])).dt.total_seconds() / 86400.0
        out[f"{name}:days"] = days.fillna(state["medians"]["days"]).to_numpy(dtype=np.float32)
        return out
    raise DataError(f"column '{name}': unknown preprocessor type '{kind}'")


def fit_table(infos: list[ColumnInfo], train: pd.DataFrame, target: str,
              options: Any = None) -> dict[str, Any]:
    """Fit every kept input column on the training rows only.

    ``options`` is the ``TableConfig`` (tokenizer, text_max_length, vocab_size,
    image_size) for the column types that need it.
    """
    return {i.name: fit_column(i, train[i.name]) for i in infos if i.name != target}


def transform_table(states: dict[str, dict[str, Any]], df: pd.DataFrame) -> dict[str, np.ndarray]:
    missing = [c for c in states if c not in df.columns]
    if missing:
        raise InputError(f"input is missing required column(s) {missing}; the model was "
                         f"trained on {list(states)}. Fix: add them (empty values are allowed).")
    out: dict[str, np.ndarray] = {}
    for name, state in states.items():
        out.update(transform_column(name, state, df[name]))
    return out
