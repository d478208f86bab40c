"""Per-column preprocessors for tables: fitted on the training split only,
saved as JSON state (into package.json), applied identically in training,
``predict`` and the server.

    state = fit_column(info, train_df[col])        # JSON-able dict
    arrays = transform_column(col, state, df[col])  # {name: np.ndarray}

number    median-imputed, standardized float32, plus a 0/1 missing indicator
category  int64 codes by training frequency (0 = missing or unseen, capped at
          MAX_CATEGORIES with the rest as one 'other' code)
boolean   float32 0/1, missing as 0.5
datetime  float32 features: year, month, day, weekday, hour, and days since
          the training minimum (missing: training medians)
text      int64 token ids N x L (data/text.py: a trained or pretrained tokenizer)
molecule, protein
          int64 character ids N x L (data/sequences.py)
image     uint8 pixels N x H x W x C decoded from file paths (relative paths are
          resolved against ``base_dir``: the training table's folder at prepare)
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from PIL import Image

from launchml.data.columns import (
    _BOOL_WORDS,
    MAX_CATEGORIES,
    ColumnInfo,
    category_key,
    parse_dates,
    parse_numbers,
)
from launchml.data.images import load_image
from launchml.data.sequences import fit_sequence, transform_sequence
from launchml.data.text import fit_text, transform_text
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


def _image_path(value: Any, base_dir: Path | None) -> Any:
    """A path resolved against ``base_dir``; bytes, arrays and PIL images pass through."""
    if not isinstance(value, str | Path):
        return value
    path = Path(value).expanduser()
    return path if path.is_absolute() or base_dir is None else Path(base_dir) / path


def _grayscale(col: pd.Series, base_dir: Path | None) -> bool:
    """True when the first (up to 16) readable training images all have one channel."""
    modes = []
    for v in col.dropna().iloc[:16]:
        try:
            with Image.open(_image_path(v, base_dir)) as img:
                modes.append(img.mode)
        except (OSError, ValueError, TypeError, AttributeError):
            continue  # transform reports unreadable files with their row
    return bool(modes) and all(m in ("1", "L", "LA", "I", "I;16", "F") for m in modes)


def fit_image(col: pd.Series, options: Any = None) -> dict[str, Any]:
    h, w = getattr(options, "image_size", (64, 64))
    train = getattr(options, "train", None)
    base = Path(train).parent if isinstance(train, str | Path) else None
    gray = _grayscale(col, base)
    c = 1 if gray else 3
    return {"type": "image", "target_size": [int(h), int(w)],
            "color_mode": "grayscale" if gray else "rgb", "channels": c,
            "interpolation": "bilinear", "rescale": 1 / 255, "mean": [0.5] * c, "std": [0.5] * c}


def transform_image(name: str, state: dict[str, Any], col: pd.Series,
                    base_dir: Path | None = None) -> np.ndarray:
    h, w = state["target_size"]
    out = np.zeros((len(col), h, w, state["channels"]), dtype=np.uint8)

    def one(i: int) -> str | None:
        v = col.iloc[i]
        if not isinstance(v, bytes | np.ndarray) and pd.isna(v):
            return "is empty. Fix: fill in the image's path"
        source = _image_path(v, base_dir)
        try:
            out[i] = load_image(source, state)
        except InputError as e:
            held = f"holds {str(v)!r}: " if isinstance(v, str | Path) else ""
            return (f"{held}{e}. Fix: correct the path (relative paths are read from the "
                    "training table's folder) or replace the file")
        return None

    with ThreadPoolExecutor(max_workers=4) as pool:
        errors = list(pool.map(one, range(len(col))))
    for i, err in enumerate(errors):
        if err is not None:
            raise InputError(f"column '{name}' (image): data row {col.index[i]} {err}.")
    return out


def fit_column(info: ColumnInfo, col: pd.Series, options: Any = None) -> dict[str, Any]:
    """Learn one column's preprocessing state from the training rows.

    ``options`` is the ``TableConfig`` (or None: defaults) for text and image columns.
    """
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
    if kind == "text":
        return fit_text(info.name, col, options)
    if kind in ("molecule", "protein"):
        return fit_sequence(kind, col)
    if kind == "image":
        return fit_image(col, options)
    raise DataError(f"column '{info.name}': type '{kind}' has no table preprocessor")


def transform_column(name: str, state: dict[str, Any], col: pd.Series, *,
                     base_dir: Path | None = None) -> dict[str, np.ndarray]:
    """Apply a fitted state; the arrays are named '<column>' or '<column>:<part>'.

    ``base_dir``: the folder relative image paths are read from (default: the cwd).
    """
    kind = state["type"]
    if kind == "text":
        return {name: transform_text(name, state, col)}
    if kind in ("molecule", "protein"):
        return {name: transform_sequence(state, col)}
    if kind == "image":
        return {name: transform_image(name, state, col, base_dir)}
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
    return {i.name: fit_column(i, train[i.name], options) for i in infos if i.name != target}


def transform_table(states: dict[str, dict[str, Any]], df: pd.DataFrame, *,
                    base_dir: Path | None = None) -> dict[str, np.ndarray]:
    missing = [c for c in states if c not in df.columns]
    if missing:
        raise InputError(f"input is missing required column(s) {missing}; the model was "
                         f"trained on {list(states)}. Fix: add them (empty values are allowed).")
    out: dict[str, np.ndarray] = {}
    for name, state in states.items():
        out.update(transform_column(name, state, df[name], base_dir=base_dir))
    return out
