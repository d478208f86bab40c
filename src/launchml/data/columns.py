"""Column-type inference for tables, with the reason for every decision.

Types: number, category, boolean, datetime, text, image (a path to an image
file), molecule (a SMILES string), protein (an amino-acid sequence),
identifier (unique per row: dropped), constant and empty (dropped). Every
choice can be overridden by name; the report says what was decided and why.
"""

from __future__ import annotations

import re
import warnings
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pandas as pd

from launchml.data.images import IMAGE_EXTENSIONS
from launchml.errors import ConfigError, DataError

COLUMN_TYPES = ("number", "category", "boolean", "datetime", "text", "image", "molecule",
                "protein", "identifier", "constant", "empty")
DROPPED = ("identifier", "constant", "empty")
_BOOL_WORDS = {"true", "false", "yes", "no", "y", "n", "t", "f", "0", "1"}
_AMINO = set("ACDEFGHIKLMNPQRSTVWY")
_SMILES_TOKENS = re.compile(r"Cl|Br|\[[^\]]+\]|[BCNOSPFIHcnosp]|[0-9=#()+\-/\\@.%$:*]")
MAX_CATEGORIES = 1000  # more distinct values than this (and > 50% of rows): high cardinality
_THOUSANDS = re.compile(r"^[-+]?\d{1,3}(,\d{3})+(\.\d+)?$")


def parse_numbers(col: pd.Series) -> pd.Series:
    """Numbers from numbers or text; '1,234' is a thousands separator, '1,5' is not a number."""
    def clean(v: Any) -> Any:
        if isinstance(v, str):
            v = v.strip()
            return v.replace(",", "") if _THOUSANDS.match(v) else v
        return v
    return pd.to_numeric(col.astype(object).map(clean), errors="coerce")


def category_key(v: Any) -> str:
    """One text key per category value, however pandas typed the column (10115 == 10115.0)."""
    if isinstance(v, bool | np.bool_):
        return "true" if v else "false"
    if isinstance(v, float | np.floating) and float(v).is_integer():
        return str(int(v))
    return str(v).strip()


def parse_dates(col: pd.Series) -> pd.Series:
    """Datetimes in UTC without a zone, so mixed offsets and naive values compare."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        d = pd.to_datetime(col, errors="coerce", format="mixed", utc=True)
    return d.dt.tz_localize(None)


@dataclass
class ColumnInfo:
    name: str
    type: str
    reason: str
    missing: int
    unique: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _share(mask: pd.Series) -> float:
    return float(mask.mean()) if len(mask) else 0.0


def _looks_smiles(values: pd.Series) -> bool:
    s = values.astype(str)
    if s.str.contains(r"\s").any() or s.str.len().mean() < 4:
        return False
    leftover = s.map(lambda v: _SMILES_TOKENS.sub("", v))
    # bonds, branches, bracket atoms or aromatic atoms: what codes like 'C00042' lack
    structure = s.str.contains(r"[=#()\[\]]|[cnos]").mean()
    return _share(leftover == "") >= 0.95 and structure >= 0.5


def _looks_protein(values: pd.Series) -> bool:
    s = values.astype(str)
    return s.str.len().mean() >= 20 and _share(s.map(lambda v: set(v) <= _AMINO)) >= 0.95


def infer_column(name: str, col: pd.Series) -> ColumnInfo:
    """Decide one column's type from its values (never from its position)."""
    n = len(col)
    values = col.dropna()
    missing, unique = n - len(values), int(values.nunique())
    info = ColumnInfo(name, "category", "", int(missing), unique)
    if len(values) == 0:
        info.type, info.reason = "empty", f"all {n} values are missing"
        return info
    if unique == 1:
        info.type, info.reason = "constant", f"one value ({values.iloc[0]!r}) in every row"
        return info
    if pd.api.types.is_bool_dtype(values):
        info.type, info.reason = "boolean", "true/false values"
        return info
    if pd.api.types.is_numeric_dtype(values):
        integral = bool(np.all(np.mod(values.to_numpy(dtype=float), 1) == 0))
        if integral and unique == len(values) == n and values.is_monotonic_increasing and n >= 20:
            info.type, info.reason = "identifier", "unique, increasing integers (a row id)"
        else:  # 0/1 numbers stay numbers: new data may hold other values (a 2 is no error)
            info.type = "number"
            info.reason = f"numeric, {values.min():g} to {values.max():g}"
        return info
    text = values.astype(str).str.strip()
    lower = text.str.lower()
    if unique == 2 and set(lower.unique()) <= _BOOL_WORDS:
        info.type, info.reason = "boolean", f"two values: {sorted(text.unique())}"
        return info
    if parse_numbers(text).notna().all():
        info.type, info.reason = "number", "text that parses as numbers"
        return info
    if _share(lower.str.endswith(IMAGE_EXTENSIONS)) >= 0.95:
        info.type, info.reason = "image", "paths ending in an image extension"
        return info
    if parse_dates(text).notna().all() and text.str.contains(r"[-/:]").all():
        info.type, info.reason = "datetime", "every value parses as a date/time"
        return info
    if _looks_protein(text):
        info.type, info.reason = "protein", "long strings of the 20 amino-acid letters"
        return info
    if _looks_smiles(text):
        info.type, info.reason = "molecule", "SMILES strings (atoms, bonds, rings, branches)"
        return info
    words = text.str.split().str.len().mean()
    if words >= 3 and unique > 0.5 * len(values):
        info.type, info.reason = "text", f"free text, {words:.1f} words per value on average"
        return info
    if unique == len(values) == n and n >= 20 and words < 2:
        info.type, info.reason = "identifier", "a different short value in every row"
        return info
    info.type = "category"
    info.reason = f"{unique} distinct values"
    if unique > MAX_CATEGORIES and unique > 0.5 * len(values):
        info.reason += (f" (high cardinality: the {MAX_CATEGORIES} most frequent are kept, "
                        "the rest map to one 'other' code)")
    return info


def infer_columns(df: pd.DataFrame, *, target: str | None = None,
                  overrides: dict[str, str] | None = None) -> list[ColumnInfo]:
    """Infer every column's type; ``overrides`` (column -> type) win and are reported."""
    overrides = dict(overrides or {})
    unknown = sorted(set(overrides) - set(df.columns))
    if unknown:
        raise DataError(f"column type overrides name columns that are not in the table: "
                        f"{unknown}. Columns: {list(df.columns)}")
    bad = {k: v for k, v in overrides.items() if v not in COLUMN_TYPES}
    if bad:
        raise ConfigError(f"unknown column type(s) {bad}; allowed: {', '.join(COLUMN_TYPES)}")
    if target is not None and target not in df.columns:
        raise DataError(f"target column '{target}' is not in the table. Columns: "
                        f"{list(df.columns)}. Fix: set target to one of them.")
    out = []
    for name in df.columns:
        info = infer_column(name, df[name])
        if name in overrides:
            info.reason = f"set by the config (inferred: {info.type}, {info.reason})"
            info.type = overrides[name]
        out.append(info)
    if target is not None:
        t = next(i for i in out if i.name == target)
        if t.type in ("empty", "constant"):
            raise DataError(f"target column '{target}' has {t.reason}; there is nothing to "
                            "learn. Fix: choose another target or add rows of other classes.")
    return out


def target_task(col: pd.Series, requested: str = "auto") -> tuple[str, str]:
    """(task, reason) for a target column: binary, multiclass or regression.

    ``requested`` (data.task) wins: regression, binary, multiclass, or
    classification (binary or multiclass by the class count).
    """
    values = col.dropna()
    unique = values.nunique()
    if requested in ("regression", "binary", "multiclass"):
        return requested, "set by data.task"
    numbers = parse_numbers(values) if not pd.api.types.is_bool_dtype(values) else None
    if requested == "auto" and numbers is not None and numbers.notna().all():
        integral = bool(np.all(np.mod(numbers.to_numpy(dtype=float), 1) == 0))
        if not integral or unique > 20:
            return "regression", (f"numeric with {unique} distinct values (set data.task: "
                                  "classification to treat them as classes)")
    if unique == 2:
        return "binary", f"two classes: {sorted(map(str, values.unique()))}"
    return "multiclass", (f"{unique} classes" + ("" if requested != "auto" else
                          " (set data.task: regression for a numeric target)"
                          if numbers is not None and numbers.notna().all() else ""))
