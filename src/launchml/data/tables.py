"""Reading tables: CSV/TSV (delimiter and encoding sniffed, quoted newlines),
Parquet, JSON Lines, or a pandas DataFrame.

Every failure names the file, the line or byte, and the fix; nothing is
silently dropped (a ragged row is an error, not a skipped line).
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

import pandas as pd

from launchml.errors import DataError

FORMATS = {".csv": "csv", ".txt": "csv", ".tsv": "tsv", ".tab": "tsv", ".parquet": "parquet",
           ".pq": "parquet", ".jsonl": "jsonl", ".ndjson": "jsonl"}
_SNIFF_BYTES = 1 << 16


_SINGLE_BYTE = ("cp125", "latin", "iso8859", "mac_", "cp8", "cp4")


def _detect_encoding(raw: bytes) -> tuple[str, str]:
    """(encoding, reason): UTF-8 when it decodes; else charset-normalizer's guess.

    Among single-byte code pages a short sample cannot tell cp1252 from cp1250 and
    the like, so cp1252 (the common Western one) is taken when it decodes.
    """
    if raw.startswith(b"\xef\xbb\xbf"):
        return "utf-8-sig", "UTF-8 byte-order mark"
    try:
        raw.decode("utf-8")
        return "utf-8", "decodes as UTF-8"
    except UnicodeDecodeError:
        pass
    from charset_normalizer import from_bytes

    best = from_bytes(raw[: 4 * _SNIFF_BYTES]).best()
    guess = best.encoding if best is not None else "latin-1"
    if guess.startswith(_SINGLE_BYTE):
        try:
            raw.decode("cp1252")
            guess = "cp1252"
        except UnicodeDecodeError:
            pass
    return guess, f"not UTF-8; read as {guess} (set the encoding if text looks wrong)"


def _decode(path: Path, raw: bytes, encoding: str | None) -> tuple[str, dict[str, str]]:
    if encoding is None:
        encoding, why = _detect_encoding(raw)
    else:
        why = "set in the config"
    try:
        return raw.decode(encoding), {"encoding": encoding, "encoding_reason": why}
    except UnicodeDecodeError as e:
        line = raw[: e.start].count(b"\n") + 1
        guess, _ = _detect_encoding(raw)
        raise DataError(
            f"'{path}': byte {e.start} (line {line}) is not valid {encoding}. "
            f"Fix: set the encoding to the file's own (it looks like {guess}), or re-save "
            "the file as UTF-8."
        ) from None
    except LookupError:
        raise DataError(f"'{path}': unknown encoding '{encoding}'. Fix: use a Python codec "
                        "name such as utf-8, latin-1 or cp1252.") from None


def _sniff_delimiter(text: str) -> str:
    sample = text[:_SNIFF_BYTES]
    try:
        return csv.Sniffer().sniff(sample, delimiters=",;\t|").delimiter
    except csv.Error:
        return ","


def _read_csv(path: Path, kind: str, delimiter: str | None, encoding: str | None):
    text, info = _decode(path, path.read_bytes(), encoding)
    sep = delimiter or ("\t" if kind == "tsv" else _sniff_delimiter(text))
    try:
        df = pd.read_csv(io.StringIO(text), sep=sep, engine="c")
    except pd.errors.ParserError as e:
        raise DataError(
            f"'{path}': {str(e).strip()}. A row has more fields than the header (delimiter "
            f"{sep!r}). Fix: quote fields that contain the delimiter, or remove the extra "
            "fields on that line."
        ) from None
    except pd.errors.EmptyDataError:
        raise DataError(f"'{path}' is empty. Fix: a header line and at least one row.") from None
    return df, {**info, "delimiter": sep}


def _read_jsonl(path: Path, encoding: str | None):
    text, info = _decode(path, path.read_bytes(), encoding)
    records: list[dict[str, Any]] = []
    for n, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as e:
            raise DataError(f"'{path}': line {n} is not valid JSON ({e.msg}). "
                            "Fix: one JSON object per line.") from None
        if not isinstance(obj, dict):
            raise DataError(f"'{path}': line {n} is a JSON {type(obj).__name__}, not an "
                            "object. Fix: one {\"column\": value, ...} object per line.")
        nested = [k for k, v in obj.items() if isinstance(v, list | dict)]
        if nested:
            raise DataError(f"'{path}': line {n}: field(s) {nested} hold a list or object; "
                            "columns take single values. Fix: flatten them into columns, "
                            "or store them as a JSON string.")
        records.append(obj)
    return pd.DataFrame.from_records(records), info


def read_table(
    source: str | Path | pd.DataFrame,
    *,
    delimiter: str | None = None,
    encoding: str | None = None,
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Read a table; return it with what was detected (format, encoding, delimiter)."""
    if isinstance(source, pd.DataFrame):
        df, info = source.copy(), {"format": "dataframe"}
    else:
        path = Path(source)
        if not path.is_file():
            raise DataError(f"table '{path}' does not exist. Fix: check the path "
                            "(relative paths start in the folder you run launchml from).")
        kind = FORMATS.get(path.suffix.lower())
        if kind is None:
            raise DataError(f"'{path}': unknown table format '{path.suffix}'. Supported: "
                            f"{', '.join(sorted(FORMATS))}. Fix: rename the file or convert it.")
        if kind in ("csv", "tsv"):
            df, info = _read_csv(path, kind, delimiter, encoding)
        elif kind == "jsonl":
            df, info = _read_jsonl(path, encoding)
        else:
            df, info = pd.read_parquet(path), {}
        info = {"format": kind, "path": str(path), **info}
    if df.empty:
        raise DataError(f"table {info.get('path', '(DataFrame)')} has no rows.")
    dupes = sorted({str(c) for c in df.columns if list(df.columns).count(c) > 1})
    if dupes:
        raise DataError(f"columns {dupes} appear more than once. Fix: rename them.")
    df.columns = [str(c) for c in df.columns]
    return df, {**info, "rows": len(df), "columns": len(df.columns)}
