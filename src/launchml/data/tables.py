"""Reading tables: CSV/TSV (delimiter and encoding sniffed, quoted newlines),
Parquet, JSON Lines, or a pandas DataFrame.

``read_table`` reads a whole table (training); ``iter_table`` reads the same
files the same way in chunks of rows (prediction), so memory stays bounded.
A CSV whose numbers use decimal commas ('23,5'; ';'-separated, as spreadsheets
in many locales write them) is detected from every value of its columns, or set
with ``decimal``; what stays ambiguous is noted per column (``NOTES``) and shown
in the inferred type's reason.
Every failure names the file, the line or byte, and the fix; nothing is
silently dropped (a ragged row is an error, not a skipped line).
"""

from __future__ import annotations

import codecs
import csv
import io
import json
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import pandas as pd

from launchml.data.columns import COMMA_NUMBER as _COMMA_NUMBER
from launchml.data.columns import NOTES, parse_numbers
from launchml.errors import ConfigError, DataError

FORMATS = {".csv": "csv", ".txt": "csv", ".tsv": "tsv", ".tab": "tsv", ".parquet": "parquet",
           ".pq": "parquet", ".jsonl": "jsonl", ".ndjson": "jsonl"}
_SNIFF_BYTES = 1 << 16
_HEAD_BYTES = 4 * _SNIFF_BYTES  # what encoding detection looks at
_BLOCK = 1 << 20  # bytes read at a time when a file is checked without loading it
CHUNK_ROWS = 50_000  # iter_table's default rows per chunk


_SINGLE_BYTE = ("cp125", "latin", "iso8859", "mac_", "cp8", "cp4")


def _detect_encoding(raw: bytes, decodes: Callable[[str], bool] | None = None
                     ) -> tuple[str, str]:
    """(encoding, reason): UTF-8 when it decodes; else charset-normalizer's guess.

    Among single-byte code pages a short sample cannot tell cp1252 from cp1250 and
    the like, so cp1252 (the common Western one) is taken when it decodes; so too
    when the sampled head is plain ASCII and the odd bytes come later. ``raw`` is
    the whole file, or its head when ``decodes(encoding)`` says whether the whole
    file decodes (``iter_table`` checks the file block by block).
    """
    if decodes is None:
        decodes = _bytes_decode(raw)
    if raw.startswith(b"\xef\xbb\xbf"):
        return "utf-8-sig", "UTF-8 byte-order mark"
    if decodes("utf-8"):
        return "utf-8", "decodes as UTF-8"
    from charset_normalizer import from_bytes

    best = from_bytes(raw[:_HEAD_BYTES]).best()
    guess = best.encoding if best is not None else "latin-1"
    if (guess == "ascii" or guess.startswith(_SINGLE_BYTE)) and decodes("cp1252"):
        guess = "cp1252"
    return guess, f"not UTF-8; read as {guess} (set the encoding if text looks wrong)"


def _bytes_decode(raw: bytes) -> Callable[[str], bool]:
    def decodes(encoding: str) -> bool:
        try:
            raw.decode(encoding)
            return True
        except UnicodeDecodeError:
            return False

    return decodes


def _encoding_error(path: Path, encoding: str, byte: int, line: int, guess: str) -> DataError:
    return DataError(
        f"'{path}': byte {byte} (line {line}) is not valid {encoding}. "
        f"Fix: set the encoding to the file's own (it looks like {guess}), or re-save "
        "the file as UTF-8."
    )


def _unknown_encoding(path: Path, encoding: str) -> DataError:
    return DataError(f"'{path}': unknown encoding '{encoding}'. Fix: use a Python codec "
                     "name such as utf-8, latin-1 or cp1252.")


def _decode(path: Path, raw: bytes, encoding: str | None) -> tuple[str, dict[str, str]]:
    if encoding is None:
        encoding, why = _detect_encoding(raw)
    else:
        why = "set in the config"
    try:
        return raw.decode(encoding), {"encoding": encoding, "encoding_reason": why}
    except UnicodeDecodeError as e:
        line = raw[: e.start].count(b"\n") + 1
        raise _encoding_error(path, encoding, e.start, line, _detect_encoding(raw)[0]) from None
    except LookupError:
        raise _unknown_encoding(path, encoding) from None


def _first_bad_byte(path: Path, encoding: str) -> tuple[int, int] | None:
    """(byte offset, line) of the first byte of ``path`` that is not ``encoding``, or None.

    Reads the file block by block, never whole. Raises LookupError for an unknown codec.
    """
    decoder = codecs.getincrementaldecoder(encoding)()
    offset = lines = 0
    with open(path, "rb") as f:
        while True:
            block = f.read(_BLOCK)
            pending = len(decoder.getstate()[0])  # an unfinished character from the last block
            try:
                decoder.decode(block, final=not block)
            except UnicodeDecodeError as e:
                at = offset - pending + e.start
                return at, lines + block[: max(0, at - offset)].count(b"\n") + 1
            if not block:
                return None
            offset += len(block)
            lines += block.count(b"\n")


def _sniff_file(path: Path, encoding: str | None) -> tuple[str, dict[str, str]]:
    """The head of ``path`` decoded, and its encoding found as ``_decode`` finds it.

    The whole file is checked against the encoding block by block, so a bad byte
    deep in the file fails here, naming its byte and line, before any row is read.
    """
    with open(path, "rb") as f:
        head = f.read(_HEAD_BYTES)
    bad: dict[str, tuple[int, int] | None] = {}

    def first_bad(enc: str) -> tuple[int, int] | None:
        if enc not in bad:
            bad[enc] = _first_bad_byte(path, enc)
        return bad[enc]

    if encoding is None:
        encoding, why = _detect_encoding(head, lambda enc: first_bad(enc) is None)
    else:
        why = "set in the config"
    try:
        where = first_bad(encoding)
    except LookupError:
        raise _unknown_encoding(path, encoding) from None
    if where is not None:
        guess = _detect_encoding(head, lambda enc: first_bad(enc) is None)[0]
        raise _encoding_error(path, encoding, *where, guess)
    text = codecs.getincrementaldecoder(encoding)().decode(head, final=len(head) < _HEAD_BYTES)
    return text, {"encoding": encoding, "encoding_reason": why}


def _sniff_delimiter(text: str) -> str:
    sample = text[:_SNIFF_BYTES]
    try:
        return csv.Sniffer().sniff(sample, delimiters=",;\t|").delimiter
    except csv.Error:
        return ","


def _csv_errors(path: Path, sep: str, read: Callable[[], Any]) -> Any:
    """``read()``, with pandas' parser errors worded as launchml's (file, line, fix)."""
    try:
        return read()
    except pd.errors.ParserError as e:
        raise DataError(
            f"'{path}': {str(e).strip()}. A row has more fields than the header (delimiter "
            f"{sep!r}). Fix: quote fields that contain the delimiter, or remove the extra "
            "fields on that line."
        ) from None
    except pd.errors.EmptyDataError:
        raise DataError(f"'{path}' is empty. Fix: a header line and at least one row.") from None


_THOUSANDS_COMMA = r"[-+]?\d{1,3}(,\d{3})+"  # '1,500': 1.5 with a decimal comma, or 1500
_THOUSANDS_DOT = r"[-+]?[1-9]\d{0,2}(\.\d{3})+"  # '1.500': 1.5, or 1500 with a decimal comma


def _comma_columns(df: pd.DataFrame) -> dict[str, pd.Series]:
    """The text columns whose every value is a number with a decimal comma ('23,5',
    '1.234,5'): {column: its values holding a comma}."""
    out = {}
    for name in df.columns:
        col = df[name]
        if pd.api.types.is_numeric_dtype(col) or pd.api.types.is_bool_dtype(col):
            continue
        values = col.dropna()
        if values.empty or not isinstance(values.iloc[0], str) \
                or not _COMMA_NUMBER.match(values.iloc[0].strip()) \
                or not all(isinstance(v, str) for v in values):
            continue
        text = values.str.strip()
        if not text.str.fullmatch(_COMMA_NUMBER.pattern).all():
            continue
        comma = text[text.str.contains(",", regex=False)]
        if len(comma):
            out[name] = comma
    return out


def _unsure(comma: pd.Series) -> bool:
    """True when every comma value could be a thousands separator too ('1,500')."""
    return bool(comma.str.fullmatch(_THOUSANDS_COMMA).all())


def _decide_decimal(df: pd.DataFrame, sep: str, decimal: str | None) -> tuple[str, str]:
    """(decimal separator, reason) of a CSV, decided from every value of its columns."""
    if decimal is not None:
        if decimal not in (".", ","):
            raise ConfigError(f"data.decimal is {decimal!r}; it is '.' or ',' (or unset: "
                              "detected). Fix: set one of them.")
        return decimal, "set in the config"
    if sep == ",":
        return ".", "',' separates the fields"
    columns = _comma_columns(df)
    sure = [name for name, comma in columns.items() if not _unsure(comma)]
    if sure:
        return ",", (f"column '{sure[0]}' holds numbers with a decimal comma in every row "
                     f"(e.g. {columns[sure[0]].iloc[0]!r})")
    if columns and sep == ";":
        name = next(iter(columns))
        return ",", (f"';'-separated, and column '{name}' holds numbers like "
                     f"{columns[name].iloc[0]!r} in every row (read as a decimal comma)")
    return ".", "no column holds numbers with decimal commas"


def _apply_decimal(df: pd.DataFrame, decimal: str) -> dict[str, str]:
    """Decimal-comma text columns -> numbers, in place; {column: note} for the unsure ones."""
    notes = {}
    if decimal != ",":
        return notes
    for name, comma in _comma_columns(df).items():
        df[name] = parse_numbers(df[name], ",")
        if _unsure(comma):
            v = comma.iloc[0]
            notes[name] = (f"ambiguous: ',' read as the decimal point ({v!r} = "
                           f"{float(v.replace(',', '.')):g}), but every such value could use "
                           f"',' for thousands instead ({v!r} = {float(v.replace(',', '')):g}); "
                           "if it does, set data.decimal: '.'")
    return notes


def _dot_notes(text: str, sep: str, df: pd.DataFrame) -> dict[str, str]:
    """Decimal-comma files: number columns whose '.' values all look like thousands groups."""
    floats = [c for c in df.columns if pd.api.types.is_float_dtype(df[c])]
    if not floats:
        return {}
    try:
        raw = pd.read_csv(io.StringIO(text), sep=sep, engine="c", dtype=str, usecols=floats)
    except (ValueError, pd.errors.ParserError):  # notes only: the table itself was read
        return {}
    notes = {}
    for name in floats:
        values = raw[name].dropna().str.strip()
        dotted = values[values.str.contains(".", regex=False)]
        if len(dotted) and dotted.str.fullmatch(_THOUSANDS_DOT).all():
            v = dotted.iloc[0]
            notes[name] = (f"'.' read as the decimal point ({v!r} = {float(v):g}) though the "
                           f"file's decimal separator is ','; if '.' groups thousands here "
                           f"({v!r} = {float(v.replace('.', '')):g}), remove the dots from "
                           "the values")
    return notes


def _check_header(path: Path, text: str, sep: str) -> None:
    """Refuse a header that names a column twice (pandas would rename the second 'x.1')."""
    try:
        first = pd.read_csv(io.StringIO(text[: text.find("\n") + 1 or len(text)]), sep=sep,
                            engine="c", header=None, nrows=1, dtype=str,
                            keep_default_na=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError):
        return  # the full read reports it
    names = [str(c) for c in first.iloc[0].tolist()] if len(first) else []
    dupes = sorted({c for c in names if names.count(c) > 1})
    if dupes:
        where = ", ".join(f"'{c}' (columns {[i + 1 for i, n in enumerate(names) if n == c]})"
                          for c in dupes[:10])
        raise DataError(f"'{path}': the header names {where} more than once; a table's "
                        "columns need distinct names (they would be read as 'x' and "
                        "'x.1'). Fix: rename them in the header.")


def _read_csv(path: Path, kind: str, delimiter: str | None, encoding: str | None,
              decimal: str | None = None):
    text, info = _decode(path, path.read_bytes(), encoding)
    sep = delimiter or ("\t" if kind == "tsv" else _sniff_delimiter(text))
    _check_header(path, text, sep)
    df = _csv_errors(path, sep, lambda: pd.read_csv(io.StringIO(text), sep=sep, engine="c"))
    decimal, why = _decide_decimal(df, sep, decimal)
    notes = _apply_decimal(df, decimal)
    if decimal == ",":
        notes = {**_dot_notes(text, sep, df), **notes}
    if notes:
        df.attrs[NOTES] = notes
    return df, {**info, "delimiter": sep, "decimal": decimal, "decimal_reason": why}


def _head_decimal(head: str, sep: str, decimal: str | None) -> str:
    """The decimal separator of a file, decided from its sniffed head as read_table decides."""
    if decimal is not None or sep == ",":
        return _decide_decimal(pd.DataFrame(), sep, decimal)[0]
    try:  # whole lines only: the head may end inside a row
        df = pd.read_csv(io.StringIO(head[: head.rfind("\n") + 1]), sep=sep, engine="c")
    except (pd.errors.ParserError, pd.errors.EmptyDataError):
        return "."
    return _decide_decimal(df, sep, None)[0]


def _iter_csv(path: Path, kind: str, delimiter: str | None, encoding: str | None,
              chunk_rows: int, decimal: str | None = None) -> Iterator[pd.DataFrame]:
    head, info = _sniff_file(path, encoding)
    sep = delimiter or ("\t" if kind == "tsv" else _sniff_delimiter(head))
    _check_header(path, head, sep)
    decimal = _head_decimal(head, sep, decimal)

    def chunks() -> Iterator[pd.DataFrame]:
        with open(path, encoding=info["encoding"], newline="") as f:
            reader = _csv_errors(path, sep, lambda: pd.read_csv(f, sep=sep, engine="c",
                                                                chunksize=chunk_rows))
            with reader:  # pandas numbers each chunk's rows on from the previous chunk
                while (chunk := _csv_errors(path, sep, lambda: next(reader, None))) is not None:
                    _apply_decimal(chunk, decimal)
                    yield chunk

    return chunks()


def _jsonl_records(path: Path, lines: Iterable[str]) -> Iterator[dict[str, Any]]:
    """One validated record per non-blank line; errors name the line."""
    for n, line in enumerate(lines, start=1):
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
        yield obj


def _read_jsonl(path: Path, encoding: str | None):
    text, info = _decode(path, path.read_bytes(), encoding)
    lines = io.StringIO(text, newline="\n")  # lines end at '\n' only, as in iter_table
    return pd.DataFrame.from_records(list(_jsonl_records(path, lines))), info


def _iter_jsonl(path: Path, encoding: str | None, chunk_rows: int) -> Iterator[pd.DataFrame]:
    _, info = _sniff_file(path, encoding)
    seen: dict[str, None] = {}  # columns in order of first appearance, as in read_table

    def frame(records: list[dict[str, Any]], start: int) -> pd.DataFrame:
        for r in records:
            seen.update(dict.fromkeys(r))
        df = pd.DataFrame.from_records(records).reindex(columns=list(seen))
        df.index = pd.RangeIndex(start, start + len(df))
        return df

    def chunks() -> Iterator[pd.DataFrame]:
        records: list[dict[str, Any]] = []
        start = 0
        with open(path, encoding=info["encoding"], newline="\n") as f:
            for record in _jsonl_records(path, f):
                records.append(record)
                if len(records) == chunk_rows:
                    yield frame(records, start)
                    start += len(records)
                    records = []
        if records:
            yield frame(records, start)

    return chunks()


def _parquet_error(path: Path, e: Exception) -> DataError:
    return DataError(f"'{path}' is not a readable Parquet file ({e}). Fix: check that the "
                     "file is complete, or re-export it (pandas: df.to_parquet(path)).")


def _read_parquet(path: Path) -> pd.DataFrame:
    import pyarrow as pa

    try:
        return pd.read_parquet(path)
    except (pa.ArrowException, OSError) as e:
        raise _parquet_error(path, e) from None


def _iter_parquet(path: Path, chunk_rows: int) -> Iterator[pd.DataFrame]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        pf = pq.ParquetFile(path)
    except (pa.ArrowException, OSError) as e:
        raise _parquet_error(path, e) from None

    def chunks() -> Iterator[pd.DataFrame]:
        start = 0
        with pf:
            batches = pf.iter_batches(batch_size=chunk_rows)
            while True:
                try:
                    batch = next(batches, None)
                except (pa.ArrowException, OSError) as e:
                    raise _parquet_error(path, e) from None
                if batch is None:
                    return
                df = batch.to_pandas()  # the pandas metadata restores a saved index
                if isinstance(df.index, pd.RangeIndex):
                    df.index = pd.RangeIndex(start, start + len(df))
                start += len(df)
                yield df

    return chunks()


def _table_path(source: str | Path) -> tuple[Path, str]:
    path = Path(source)
    if not path.is_file():
        raise DataError(f"table '{path}' does not exist. Fix: check the path "
                        "(relative paths start in the folder you run launchml from).")
    kind = FORMATS.get(path.suffix.lower())
    if kind is None:
        raise DataError(f"'{path}': unknown table format '{path.suffix}'. Supported: "
                        f"{', '.join(sorted(FORMATS))}. Fix: rename the file or convert it.")
    return path, kind


def _checked_columns(df: pd.DataFrame) -> pd.DataFrame:
    dupes = sorted({str(c) for c in df.columns if list(df.columns).count(c) > 1})
    if dupes:
        raise DataError(f"columns {dupes} appear more than once. Fix: rename them.")
    df.columns = [str(c) for c in df.columns]
    return df


def _no_rows(where: str) -> DataError:
    return DataError(f"table {where} has no rows.")


def read_table(
    source: str | Path | pd.DataFrame,
    *,
    delimiter: str | None = None,
    encoding: str | None = None,
    decimal: str | None = None,
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Read a table; return it with what was detected (format, encoding, delimiter,
    decimal separator).

    ``decimal``: CSV/TSV numbers' decimal separator, '.' or ','; None: detected
    (',' when every value of a text column is a number with a decimal comma).
    """
    if isinstance(source, pd.DataFrame):
        df, info = source.copy(), {"format": "dataframe"}
    else:
        path, kind = _table_path(source)
        if kind in ("csv", "tsv"):
            df, info = _read_csv(path, kind, delimiter, encoding, decimal)
        elif kind == "jsonl":
            df, info = _read_jsonl(path, encoding)
        else:
            df, info = _read_parquet(path), {}
        info = {"format": kind, "path": str(path), **info}
    if df.empty:
        raise _no_rows(info.get("path", "(DataFrame)"))
    df = _checked_columns(df)
    return df, {**info, "rows": len(df), "columns": len(df.columns)}


def iter_table(
    source: str | Path | pd.DataFrame,
    *,
    chunk_rows: int = CHUNK_ROWS,
    delimiter: str | None = None,
    encoding: str | None = None,
    decimal: str | None = None,
) -> Iterator[pd.DataFrame]:
    """Read a table ``chunk_rows`` rows at a time, never holding the whole file.

    Files are read as ``read_table`` reads them (the same formats, the same sniffed
    delimiter, encoding and decimal separator (from the file's head), the same
    errors); each chunk's index numbers its rows
    in the whole table (0, 1, ... on from the previous chunk). The path, the format
    and the encoding are checked now; bad rows fail when their chunk is reached.

        for chunk in iter_table("big.csv", chunk_rows=10_000):
            ...
    """
    if not isinstance(chunk_rows, int) or chunk_rows < 1:
        raise ValueError(f"chunk_rows must be a positive integer; got {chunk_rows!r}")
    if isinstance(source, pd.DataFrame):
        where = "(DataFrame)"
        chunks = (source.iloc[s:s + chunk_rows] for s in range(0, len(source), chunk_rows))
    else:
        path, kind = _table_path(source)
        where = str(path)
        if kind in ("csv", "tsv"):
            chunks = _iter_csv(path, kind, delimiter, encoding, chunk_rows, decimal)
        elif kind == "jsonl":
            chunks = _iter_jsonl(path, encoding, chunk_rows)
        else:
            chunks = _iter_parquet(path, chunk_rows)
    return _checked_chunks(chunks, where)


def _checked_chunks(chunks: Iterator[pd.DataFrame], where: str) -> Iterator[pd.DataFrame]:
    rows = 0
    for chunk in chunks:
        if len(chunk):
            rows += len(chunk)
            yield _checked_columns(chunk)
    if rows == 0:
        raise _no_rows(where)
