"""Column-type inference for tables, with the reason for every decision.

Types: number, category, boolean, datetime, text, image (a path to an image
file), molecule (a SMILES string), protein (an amino-acid sequence),
identifier (unique per row: dropped), constant and empty (dropped). Every
choice can be overridden by name; the report says what was decided and why.
"""

from __future__ import annotations

import datetime
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
# the groups of column types (numpy/pandas-free, so serving by ONNX imports no pandas)
from launchml.data.schema import (  # noqa: E402,F401  (re-exported)
    ENCODED_TYPES,
    FEATURE_TYPES,
    SEQUENCE_TYPES,
    TABULAR_TYPES,
)

DROPPED = ("identifier", "constant", "empty")
# the one list of boolean words (lower case): column inference, preprocessing, 0/1 target
# columns and evaluate all read these
TRUE_WORDS = frozenset({"true", "yes", "y", "t", "1"})
FALSE_WORDS = frozenset({"false", "no", "n", "f", "0"})
BOOL_WORDS = TRUE_WORDS | FALSE_WORDS
_AMINO = set("ACDEFGHIKLMNPQRSTVWY")
_SMILES_TOKENS = re.compile(r"Cl|Br|\[[^\]]+\]|[BCNOSPFIHcnosp]|[0-9=#()+\-/\\@.%$:*]")
MAX_CATEGORIES = 1000  # more distinct values than this (and > 50% of rows): high cardinality
_THOUSANDS = re.compile(r"^[-+]?\d{1,3}(,\d{3})+(\.\d+)?$")
# a number written with a decimal comma: '23,5', '1.234,5' ('.' groups thousands), '-0,5e3'
_COMMA_NUMBER = re.compile(r"^[-+]?([1-9]\d{0,2}(\.\d{3})+|\d*)(,\d+)?([eE][-+]?\d+)?$")
_NUMBERISH = re.compile(r"^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$")
_DMY = re.compile(r"^(\d{1,2})([/.\-])(\d{1,2})\2(\d{4}|\d{2})(?=$|[\sT])")  # 30/07/2023
_YEAR = re.compile(r"\d{4}")
# a column of unique integers named like a row id: id, *_id, PassengerId, rownames, index ...
_ID_NAME = re.compile(r"^(ids?|rownames?|rows?|row[ _.-]?(id|no|nr|num|number|index|idx)"
                      r"|index|idx|unnamed: ?\d+|\.\.\.\d+)$|[ _.-]ids?$|^ids?[ _.-]", re.I)
_ID_CAMEL = re.compile(r"[a-z](Id|ID)$")
NOTES = "launchml_notes"  # DataFrame.attrs key: {column: what reading it found} (tables.py)
# public names for the other data modules (a module imports no private name of another)
COMMA_NUMBER = _COMMA_NUMBER


def _comma_number(v: str) -> str | None:
    """'1.234,5' -> '1234.5' (a decimal comma; '.' groups thousands); None: not such a number."""
    m = _COMMA_NUMBER.match(v)
    if m is None or not any(c.isdigit() for c in v):
        return None
    return v.replace(".", "").replace(",", ".")


def parse_numbers(col: pd.Series, decimal: str = ".") -> pd.Series:
    """Numbers from numbers or text.

    decimal '.': '1,234' is a thousands separator, '1,5' is not a number.
    decimal ',': '1,5' is 1.5 and '1.234,5' is 1234.5; '1.5' is not a number.
    """
    def clean(v: Any) -> Any:
        if isinstance(v, str):
            v = v.strip()
            if decimal == ",":
                return _comma_number(v) or "not a number"
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


@dataclass
class DateFormat:
    """How one column's dates are read: the day/month order and, when every
    training value has it, one exact format (strftime codes); ``conflict``: data
    positions (in the non-missing values) of a day-first and of a month-first value."""

    dayfirst: bool
    format: str | None
    reason: str
    conflict: tuple[Any, Any] | None = None


def _day_month(v: str) -> tuple[int, int] | None:
    m = _DMY.match(v)
    return (int(m[1]), int(m[3])) if m else None


def _date_text(v: Any, dayfirst: bool, fmt: str | None) -> Any:
    """One value as text pandas reads without guessing the order; None: not a date."""
    if isinstance(v, datetime.date | np.datetime64):
        return v
    digits_format = fmt is not None and not re.search(r"[^%A-Za-z]", fmt)  # e.g. %Y%m%d
    if isinstance(v, bool | np.bool_):
        return None
    if isinstance(v, int | float | np.integer | np.floating):
        # a bare number is no date unless the training dates were digits too (20240301)
        return str(int(v)) if digits_format and float(v).is_integer() else None
    if not isinstance(v, str):
        return None
    v = v.strip()
    if _NUMBERISH.match(v):
        return v if digits_format else None
    m = _DMY.match(v)
    if m is None:
        return v if _YEAR.search(v) else None  # no year: pandas would invent one
    first, second, year = int(m[1]), int(m[3]), m[4]
    day, month = (first, second) if dayfirst else (second, first)
    if not 1 <= month <= 12:
        return None
    if len(year) == 2:  # as strptime's %y: 69-99 -> 19xx, 00-68 -> 20xx
        year = str(1900 + int(year) if int(year) >= 69 else 2000 + int(year))
    return f"{year}-{month:02d}-{day:02d}{v[m.end():]}"


def _to_utc_naive(d: pd.Series) -> pd.Series:
    if d.dt.tz is not None:
        d = d.dt.tz_convert("UTC").dt.tz_localize(None)
    return d.astype("datetime64[ns]")


def parse_dates(col: pd.Series, dayfirst: bool | None = None,
                fmt: str | None = None) -> pd.Series:
    """Datetimes in UTC without a zone (so mixed offsets and naive values compare); NaT
    where a value is missing or not a date.

    One day/month order for the whole column: ``dayfirst``, or (None) decided from
    all the values as ``date_format`` decides. A bare number (20240301) is not a date
    unless ``fmt`` (the training values' exact format) is digits only, like %Y%m%d.
    """
    if pd.api.types.is_datetime64_any_dtype(col):
        return _to_utc_naive(col)
    if dayfirst is None:
        dayfirst = date_format(col).dayfirst
    present = col[col.notna()]
    unique = pd.unique(present.astype(object))
    texts = [_date_text(v, dayfirst, fmt) for v in unique]
    keep = [i for i, t in enumerate(texts) if t is not None]
    parsed: dict[Any, Any] = {}
    if keep:
        raw = pd.Series([texts[i] for i in keep], dtype=object)
        with warnings.catch_warnings():  # the order is fixed above: nothing left to guess
            warnings.simplefilter("ignore")
            d = pd.to_datetime(raw, errors="coerce", format="mixed", utc=True)
        parsed = dict(zip([unique[i] for i in keep], d.dt.tz_localize(None), strict=True))
    out = present.astype(object).map(lambda v: parsed.get(v, pd.NaT))
    return pd.to_datetime(out.reindex(col.index), errors="coerce").astype("datetime64[ns]")


def date_format(col: pd.Series) -> DateFormat:
    """The day/month order (and exact format) of a column's dates, decided from ALL values.

    A value whose first part is above 12 (30/07/2023) makes the column day first; one
    whose second part is (07/30/2023), month first; neither: month first, as pandas
    reads it, and the reason says the order is ambiguous.
    """
    values = col.dropna()
    unique = pd.unique(values.astype(object))  # first-seen order: the first of each kind
    parts = {v: _day_month(v.strip()) for v in unique if isinstance(v, str)}
    parts = {v: p for v, p in parts.items() if p is not None}

    def first(test: Any) -> list[int]:  # the position of the first value that passes
        v = next((v for v, p in parts.items() if test(p)), None)
        return [] if v is None else [int(np.flatnonzero(values.astype(object) == v)[0])]

    dated = first(lambda p: True)
    day_first, month_first = first(lambda p: p[0] > 12), first(lambda p: p[1] > 12)
    conflict = None
    if day_first and month_first:
        conflict = (day_first[0], month_first[0])
        dayfirst, reason = False, "day/month order differs between values"
    elif day_first:
        dayfirst, reason = True, f"day first ({values.iloc[day_first[0]]!r} has a day above 12)"
    elif month_first:
        dayfirst = False
        reason = f"month first ({values.iloc[month_first[0]]!r} has a day above 12)"
    elif dated:
        dayfirst = False
        reason = (f"day/month order ambiguous (no part above 12 in {len(parts)} distinct "
                  f"values like {values.iloc[dated[0]]!r}): read month first, as pandas does; "
                  "if they are day first, write them as YYYY-MM-DD")
    else:
        dayfirst, reason = False, ""
    fmt = None
    if conflict is None and len(values):
        head = values.iloc[0]
        sample = str(int(head)) if isinstance(head, int | np.integer) else head
        if isinstance(sample, str):
            from pandas.tseries.api import guess_datetime_format

            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                fmt = guess_datetime_format(sample.strip(), dayfirst=dayfirst)
            # kept only if it reads every value exactly as the column's order does
            if fmt is not None:
                texts = values.map(lambda v: str(int(v)) if isinstance(v, int | np.integer)
                                   else str(v).strip())
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    exact = pd.to_datetime(texts, errors="coerce", format=fmt, utc=True)
                flexible = parse_dates(values, dayfirst, fmt)
                if not (exact.notna().all()
                        and (_to_utc_naive(exact) == flexible).all()):
                    fmt = None
    return DateFormat(dayfirst, fmt, reason, conflict)


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
        why = _row_id(name, values, n)
        if why:
            info.type, info.reason = "identifier", why
        else:  # 0/1 numbers stay numbers: new data may hold other values (a 2 is no error)
            info.type = "number"
            info.reason = f"numeric, {values.min():g} to {values.max():g}"
        return info
    text = values.astype(str).str.strip()
    lower = text.str.lower()
    if unique == 2 and set(lower.unique()) <= BOOL_WORDS:
        info.type, info.reason = "boolean", f"two values: {sorted(text.unique())}"
        return info
    if parse_numbers(text).notna().all():
        info.type, info.reason = "number", "text that parses as numbers"
        comma = text[text.str.contains(",")]
        if len(comma):
            info.reason += (f" (',' read as a thousands separator, e.g. {comma.iloc[0]!r} = "
                            f"{parse_numbers(comma.iloc[:1]).iloc[0]:g}; if it is the decimal "
                            "point, set data.decimal: ',')")
        return info
    if _share(lower.str.endswith(IMAGE_EXTENSIONS)) >= 0.95:
        info.type, info.reason = "image", "paths ending in an image extension"
        return info
    dated = _date_column(name, values, text)
    if dated:
        info.type, info.reason = "datetime", dated
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
        info.reason += _numbers_as_text(name, text)
        return info
    info.type = "category"
    info.reason = f"{unique} distinct values"
    if unique > MAX_CATEGORIES and unique > 0.5 * len(values):
        info.reason += (f" (high cardinality: the {MAX_CATEGORIES} most frequent are kept, "
                        "the rest map to one 'other' code)")
    info.reason += _numbers_as_text(name, text)
    return info


def _numbers_as_text(name: str, text: pd.Series) -> str:
    """A note when text values that are not numbers as read would be with a decimal comma."""
    head = text.iloc[:100]  # most text columns fail here, at little cost
    if not (parse_numbers(head).notna() | parse_numbers(head, ",").notna()).all():
        return ""
    point, comma = parse_numbers(text).notna(), parse_numbers(text, ",").notna()
    if not (point | comma).all() or point.all():
        return ""
    if comma.all():
        return (f" (but every value is a number with a decimal comma, e.g. "
                f"{text[~point].iloc[0]!r}; Fix: set data.decimal: ',' to read them as "
                "numbers)")
    return (f" (but these look like numbers with mixed decimal separators, e.g. "
            f"{text[~comma].iloc[0]!r} and {text[~point].iloc[0]!r}; Fix: write every value "
            f"of '{name}' with one decimal separator, then set data.decimal to it)")


def data_row(label: Any) -> Any:
    """The 1-based data row (after the header) of a row labelled by its 0-based position."""
    return int(label) + 1 if isinstance(label, int | np.integer) else label


def _row_id(name: str, values: pd.Series, n: int) -> str:
    """Why a numeric column is a row id ('' if it is not): unique integers in every row
    and a name like id/rownames/index, or (n >= 20) a shuffled or ordered run a..a+n-1.

    A unique float measurement, or a unique count on a few rows, stays a number.
    """
    x = values.to_numpy(dtype=float)
    if len(values) != n or n < 2 or not np.all(np.isfinite(x)) or np.any(np.mod(x, 1) != 0):
        return ""
    if values.nunique() != n:
        return ""
    if _ID_NAME.search(str(name).strip()) or _ID_CAMEL.search(str(name).strip()):
        return f"unique integers in every row, named like a row id ('{name}')"
    # without an id-like name, only a counter in file order is taken for a row id: a
    # shuffled run 1..n can be a real feature (a rank, a floor number) and stays a number
    if n >= 20 and x.max() - x.min() == n - 1 and values.is_monotonic_increasing:
        return (f"unique integers {x.min():g} to {x.max():g}, one per row, increasing (a row "
                f"id; set data.column_types: {{'{name}': 'number'}} if it is a measurement)")
    return ""


def _date_column(name: str, values: pd.Series, text: pd.Series) -> str:
    """The reason a text column is dates ('' if it is not).

    One day/month order for the whole column, from all of its values; a column of
    dates with a value that is not a date, or with both orders, is a DataError.
    """
    looks = text.str.contains(r"[-/:.]") & ~text.str.match(_NUMBERISH)
    if _share(looks) < 0.9:
        return ""
    fmt = date_format(values)
    parsed = parse_dates(values, fmt.dayfirst, fmt.format)
    if fmt.conflict is not None:
        parsed_either = parsed.notna() | parse_dates(values, True).notna()
        if _share(parsed_either) >= 0.9:
            day, month = fmt.conflict
            raise DataError(
                f"column '{name}' mixes date orders: data row {data_row(values.index[day])} "
                f"holds {values.iloc[day]!r} (day first) but data row "
                f"{data_row(values.index[month])} holds {values.iloc[month]!r} (month first); "
                "one column is read one way. Fix: write "
                f"every date of '{name}' in one order (YYYY-MM-DD is unambiguous), or set "
                f"data.column_types: {{'{name}': 'category'}}.")
        return ""
    ok = parsed.notna()
    if ok.all():
        return "every value parses as a date/time" + (f", {fmt.reason}" if fmt.reason else "")
    if _share(ok) >= 0.9:
        bad = np.flatnonzero(~ok.to_numpy())
        raise DataError(
            f"column '{name}' holds dates, but data row {data_row(values.index[bad[0]])} holds "
            f"{values.iloc[bad[0]]!r}, which is not a date ({len(bad)} such row(s)); a date "
            "column is not filled in silently. Fix: correct those values or leave them empty, "
            f"or set data.column_types: {{'{name}': 'category'}}.")
    return ""


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
    notes = df.attrs.get(NOTES, {})  # what read_table found (e.g. decimal commas)
    out = []
    for name in df.columns:
        try:
            info = infer_column(name, df[name])
        except DataError as e:
            if name not in overrides:
                raise
            col = df[name]
            info = ColumnInfo(name, overrides[name], f"set by the config (not inferred: {e})",
                              int(col.isna().sum()), int(col.nunique()))
            out.append(info)
            continue
        if name in notes:
            info.reason += f"; {notes[name]}"
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
