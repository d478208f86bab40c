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
          the training minimum (missing: training medians), each standardized with
          the training mean and std; read with the column's one day/month order
          (and exact format) found in training; a value that is not a date, or a
          bare number (20240301), is an error
text      int64 token ids N x L (data/text.py: a trained or pretrained tokenizer), and
          '<col>:raw', the raw strings as UTF-8 bytes (the linear family's TF-IDF)
molecule, protein
          int64 character ids N x L (data/sequences.py); molecules also RDKit
          fingerprints and descriptors (data/chem.py)
image     uint8 pixels N x H x W x C decoded from file paths (relative paths are
          resolved against ``base_dir``: the training table's folder at prepare)
"""

from __future__ import annotations

import difflib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from PIL import Image

from launchml.data.chem import fit_chem, transform_chem
from launchml.data.columns import BOOL_WORDS as _BOOL_WORDS
from launchml.data.columns import (
    MAX_CATEGORIES,
    TRUE_WORDS,
    ColumnInfo,
    category_key,
    date_format,
    parse_dates,
    parse_numbers,
)
from launchml.data.images import load_image
from launchml.data.sequences import fit_sequence, token_strings, transform_sequence
from launchml.data.text import fit_text, raw_text, transform_text
from launchml.errors import DataError, InputError

_DATE_PARTS = ("year", "month", "day", "weekday", "hour")


def numbers(col: pd.Series, name: str) -> np.ndarray:
    """float64 values; a non-number, or an infinite one ('inf', 1e999), is an error
    naming the column and the data row."""
    values = parse_numbers(col)
    bad = col.notna() & values.isna()
    if bad.any():
        pos = int(np.flatnonzero(bad.to_numpy())[0])
        raise InputError(f"column '{name}' (number): data row {col.index[pos]} holds "
                         f"{col.iloc[pos]!r}, which is not a number (decimal point '.', "
                         "thousands ','). Fix: correct the value or leave it empty.")
    infinite = np.isinf(values.to_numpy(dtype=np.float64))
    if infinite.any():
        pos = int(np.flatnonzero(infinite)[0])
        raise InputError(f"column '{name}' (number): data row {col.index[pos]} holds "
                         f"{col.iloc[pos]!r}, which is not a finite number. Fix: correct the "
                         "value or leave it empty (a missing value is imputed).")
    return values.to_numpy(dtype=np.float64)


def _date_parts(d: pd.Series) -> dict[str, pd.Series]:
    """year, month, day, weekday, hour of parsed dates (float, NaN where missing)."""
    return {p: getattr(d.dt, p if p != "weekday" else "day_of_week").astype(float)
            for p in _DATE_PARTS}


def _expected_date(state: dict[str, Any]) -> str:
    if state.get("format"):
        return f"dates in the training format {state['format']}"
    if "dayfirst" in state:
        return f"dates, {'day' if state['dayfirst'] else 'month'} first in d/m/y forms"
    return "dates"


def dates(col: pd.Series, name: str, state: dict[str, Any], *, training: bool = False
          ) -> pd.Series:
    """Parsed dates as training read them; a value that is not a date (or a bare number
    where the training dates had separators) is an error naming the column and row:
    an InputError, or in the training rows a DataError."""
    # a state saved before the order was fitted: decided from these values, as then
    d = parse_dates(col, state.get("dayfirst"), state.get("format"))
    bad = col.notna() & d.isna()
    if bad.any():
        pos = int(np.flatnonzero(bad.to_numpy())[0])
        v = col.iloc[pos]
        what = ("a bare number, not a date" if isinstance(v, int | float | np.number)
                or str(v).strip().lstrip("+-").replace(".", "", 1).isdigit()
                else "not a date")
        where = f"column '{name}' (datetime): data row {col.index[pos]} holds {v!r}, which is"
        if training:
            raise DataError(f"{where} {what} (the column holds {_expected_date(state)}). "
                            "Fix: correct the value or leave it empty, or set "
                            f"data.column_types: {{'{name}': 'category'}}.")
        raise InputError(f"{where} {what}; the model reads {_expected_date(state)}. Fix: "
                         "send the date as text in that form, or leave it empty.")
    return d


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
        rare = counts < getattr(options, "_min_rows", 1)  # a private run: see fit_text
        kept = counts.index[~rare][:MAX_CATEGORIES].tolist()
        return {"type": kind, "categories": kept, "other": len(kept) < len(counts)}
    if kind == "boolean":
        return {"type": kind}
    if kind == "datetime":
        fmt = date_format(col)
        if fmt.conflict is not None:
            values = col.dropna()
            day, month = fmt.conflict
            raise DataError(f"column '{info.name}' (datetime): data row {values.index[day]} "
                            f"holds {values.iloc[day]!r} (day first) but data row "
                            f"{values.index[month]} holds {values.iloc[month]!r} (month "
                            "first). Fix: write every date in one order (YYYY-MM-DD is "
                            "unambiguous).")
        state = {"type": kind, "dayfirst": fmt.dayfirst, "format": fmt.format}
        d = dates(col, info.name, state, training=True).dropna()
        if d.empty:
            raise DataError(f"column '{info.name}' (datetime) has no parseable dates in train")
        values = _date_parts(d)
        values["days"] = (d - d.min()).dt.total_seconds() / 86400.0
        medians = {p: float(v.median()) for p, v in values.items()}
        # every part is standardized, as numbers are: the mlp sees no raw years
        scale = {p: [float(v.mean()), float(v.std(ddof=0)) or 1.0] for p, v in values.items()}
        return {**state, "origin": d.min().isoformat(), "medians": medians,  # UTC, no zone
                "scale": scale}
    if kind == "text":
        return fit_text(info.name, col, options)
    if kind == "molecule":  # character ids for the CNN + RDKit features for trees/linear
        return {**fit_sequence(kind, col), **fit_chem(info.name, col)}
    if kind == "protein":
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
    if kind == "text":  # token ids, and the raw strings (bytes) for the linear family
        return {name: transform_text(name, state, col),
                **({f"{name}:raw": raw_text(col)} if state.get("raw") else {})}
    if kind in ("molecule", "protein"):
        return {name: transform_sequence(state, col), **transform_chem(name, state, col)}
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
            return 1.0 if s in TRUE_WORDS else 0.0
        return {name: np.array([one(v) for v in col], dtype=np.float32)}
    if kind == "datetime":
        d = dates(col, name, state)
        values = _date_parts(d)
        values["days"] = (d - pd.Timestamp(state["origin"])).dt.total_seconds() / 86400.0
        scale = state.get("scale", {})  # absent in packages saved before: raw parts, as then
        out = {}
        for p, v in values.items():
            x = v.fillna(state["medians"][p]).to_numpy(dtype=np.float64)
            if p in scale:
                mean, std = scale[p]
                x = (x - mean) / std
            out[f"{name}:{p}"] = x.astype(np.float32)
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
        unknown = [str(c) for c in df.columns if c not in states]
        hints = []
        for c in missing:  # a misspelled field: 'incom' for 'income'
            close = difflib.get_close_matches(str(c), unknown, n=1, cutoff=0.6)
            if close:
                hints.append(f"the input has '{close[0]}': did you mean '{c}'?")
                unknown.remove(close[0])
        raise InputError(f"input is missing required column(s) {missing}"
                         + (f" ({'; '.join(hints)})" if hints else "")
                         + f"; the model was trained on {list(states)}. Fix: add them (empty "
                         "values are allowed)" + (", or correct the field names." if hints
                                                  else "."))
    out: dict[str, np.ndarray] = {}
    for name, state in states.items():
        out.update(transform_column(name, state, df[name], base_dir=base_dir))
    return out


# -- the inverse: prepared rows as a person reads them (report, error gallery) -------
def readable_rows(states: dict[str, Any], arrays: dict[str, np.ndarray], idx: np.ndarray
               ) -> list[dict[str, Any]]:
    """Readable values of prepared rows (inverse of the fitted preprocessing)."""
    out = []
    for i in idx:
        row: dict[str, Any] = {}
        for col, st in states.items():
            kind = st["type"]
            if col not in arrays and kind not in ("datetime",):
                continue
            if kind == "number":
                miss = arrays.get(f"{col}:missing")
                row[col] = ("missing" if miss is not None and miss[i] else
                            round(float(arrays[col][i]) * st["std"] + st["mean"], 6))
            elif kind == "category":
                code, cats = int(arrays[col][i]), st["categories"]
                row[col] = ("missing" if code == 0 else cats[code - 1]
                            if code <= len(cats) else "other")
            elif kind == "boolean":
                v = float(arrays[col][i])
                row[col] = "missing" if v == 0.5 else bool(v)
            elif kind == "text" and f"{col}:raw" in arrays:  # the string as given
                raw = np.asarray(arrays[f"{col}:raw"])[i]
                row[col] = raw.decode("utf-8", "replace") if isinstance(raw, bytes) \
                    else str(raw)
            elif kind in ("text", "molecule", "protein"):
                toks = [t for t in token_strings(st, arrays[col][i])
                        if not (t.startswith("[") and t.endswith("]"))]
                row[col] = (" " if kind == "text" else "").join(toks)
            elif kind == "image":
                row[col] = "(image)"
            else:
                row[col] = f"({kind})"
        out.append(row)
    return out
