"""``launchml predict`` and ``launchml serve``."""

from __future__ import annotations

import json
from contextlib import closing
from pathlib import Path
from typing import Any

import typer

from launchml.cli.main import app, handle_errors

_ENGINE = typer.Option("auto", "--engine", help="auto | torch | onnx")
# --out suffixes that make a table model write a scored table (input columns + predictions)
TABLE_OUT = {".csv": "csv", ".parquet": "parquet", ".pq": "parquet", ".jsonl": "jsonl",
             ".ndjson": "jsonl"}


@app.command()
@handle_errors
def predict(
    model: Path = typer.Argument(..., help="a model package (runs/<name>/model)"),
    inputs: list[Path] = typer.Argument(..., help="image files/folders, or table files"),
    engine: str = _ENGINE,
    out: Path | None = typer.Option(
        None, "--out", help="write here, not stdout. A table model and a .csv, .parquet or "
        ".jsonl name: the input columns plus 'prediction' and 'probability_<label>' columns; "
        "otherwise JSON lines"),
) -> None:
    """One JSON line per image (file, label, probabilities) or table row (file, row, ...).

    A table model with --out scored.csv (or .parquet, .jsonl) writes the input rows
    with their predictions instead, chunk by chunk: files of any size fit in memory.
    """
    from launchml.deploy.predictor import Predictor, expand_paths

    predictor = Predictor.load(model, engine=engine)  # type: ignore[arg-type]
    tables = predictor.image_column is None  # inputs are table files, not images
    if tables and out is not None and out.suffix.lower() in TABLE_OUT:
        write_scored_table(predictor, inputs, out)
        return
    if tables:
        rows = ({"file": str(p), "row": r.pop("input"), **r}
                for p in inputs for r in predictor.iter_predict(p))
    else:
        rows = ({"file": r.pop("input"), **r}
                for r in predictor.iter_predict(expand_paths(inputs)))
    if out is None:
        for row in rows:  # streamed: each line as soon as its batch is scored
            typer.echo(json.dumps(row))
        return
    from launchml.runs import atomic_path

    with atomic_path(out) as tmp, open(tmp, "w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row) + "\n")


def write_scored_table(predictor: Any, inputs: list[Path], out: Path) -> int:
    """Write every input row plus its prediction columns to ``out``; return the row count.

    Chunks are read, scored and appended one at a time into a temporary file that
    is renamed to ``out`` only at the end: a failure leaves no half-written ``out``.
    """
    from launchml import console
    from launchml.runs import atomic_path

    n = 0
    with atomic_path(out) as tmp, closing(_TableWriter(tmp, TABLE_OUT[out.suffix.lower()])) as w:
        for path in inputs:
            for chunk, rows in predictor.table_chunks(path):
                w.write(_scored(chunk, rows, predictor.labels, path), path, n)
                n += len(chunk)
    console.info(f"predict: {n} rows scored -> {out}")
    return n


def _scored(chunk: Any, rows: list[dict[str, Any]], labels: list[str], path: Path) -> Any:
    """The chunk's columns (and its index, if named), then ``prediction`` and one
    ``probability_<label>`` per label."""
    import pandas as pd

    from launchml.errors import InputError

    cols: dict[str, list[Any]] = {"prediction": [
        "|".join(r["labels"]) if "labels" in r else r["label"] if "label" in r else r["value"]
        for r in rows]}
    if rows and "probabilities" in rows[0]:
        for lab in labels:
            cols[f"probability_{lab}"] = [r["probabilities"][lab] for r in rows]
    clash = [c for c in cols if c in chunk.columns]
    if clash:
        raise InputError(f"'{path}' already has column(s) {clash}, which the scored table "
                         "adds. Fix: rename or drop them in the input.")
    named = any(n is not None for n in chunk.index.names)  # e.g. a Parquet file's saved index
    chunk = chunk.reset_index(drop=not named)
    return pd.concat([chunk, pd.DataFrame(cols)], axis=1)


class _TableWriter:
    """Appends scored chunks to a CSV, JSON Lines or Parquet file.

    Every chunk must have the first one's columns (for Parquet, their types too).
    """

    def __init__(self, path: Path, fmt: str) -> None:
        self.path, self.fmt = path, fmt
        self.columns: list[str] | None = None
        self._parquet: Any = None  # pyarrow.parquet.ParquetWriter, opened on the first chunk
        self._text = (None if fmt == "parquet"  # closed by close()
                      else open(path, "w", encoding="utf-8", newline=""))  # noqa: SIM115

    def write(self, df: Any, source: Path, first_row: int) -> None:
        from launchml.errors import InputError

        if self.columns is None:
            self.columns = list(df.columns)
        elif list(df.columns) != self.columns:
            raise InputError(f"'{source}': the rows from output row {first_row} on have columns "
                             f"{list(df.columns)}, but the output began with {self.columns}. "
                             "Fix: score tables with different columns into separate files.")
        if self.fmt == "csv":
            df.to_csv(self._text, header=first_row == 0, index=False)
        elif self.fmt == "jsonl":
            df.to_json(self._text, orient="records", lines=True, date_format="iso",
                       force_ascii=False)
        else:
            self._write_parquet(df, source, first_row)

    def _write_parquet(self, df: Any, source: Path, first_row: int) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        from launchml.errors import InputError

        table = pa.Table.from_pandas(df, preserve_index=False)
        if self._parquet is None:
            self._parquet = pq.ParquetWriter(self.path, table.schema)
        schema = self._parquet.schema
        if not table.schema.equals(schema, check_metadata=False):
            try:  # a later chunk's pandas types may differ: int64 then float64 (NaN) ...
                table = table.cast(schema)
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
                bad = next(f.name for f in table.schema if f.type != schema.field(f.name).type)
                raise InputError(
                    f"'{source}': column '{bad}' holds {table.schema.field(bad).type} values "
                    f"from output row {first_row} on, but {schema.field(bad).type} before; a "
                    "Parquet file keeps one type per column. Fix: write --out as .csv or "
                    ".jsonl, or make the column's type consistent (e.g. convert the input to "
                    "Parquet first).") from None
        self._parquet.write_table(table)

    def close(self) -> None:
        if self._text is not None:
            self._text.close()
        if self._parquet is not None:
            self._parquet.close()


@app.command()
@handle_errors
def serve(
    model: Path = typer.Argument(..., help="a model package (runs/<name>/model)"),
    host: str = typer.Option("127.0.0.1", "--host"),
    port: int = typer.Option(8000, "--port"),
    engine: str = _ENGINE,
) -> None:
    """Serve the model over REST: POST /v1/predict, GET /healthz, docs at /docs."""
    from launchml.deploy.predictor import Predictor
    from launchml.deploy.server import serve as run_server

    run_server(Predictor.load(model, engine=engine), host=host, port=port)  # type: ignore[arg-type]
