"""Batch scoring into a file that survives being killed.

    launchml predict cancer@champion big.parquet --out scores.parquet --resume

The inputs (table files, or image files and folders) are read a chunk at a time, in
an order that is the same on every run; each scored chunk is written as one part
file under ``.<out>.parts/`` and only then recorded in that folder's
``manifest.json`` (both written atomically). A run that is killed, even with SIGKILL,
leaves complete parts and a manifest naming exactly them; ``--resume`` reads the
manifest, skips the chunks it lists (read, not scored) and goes on from the first
missing one, so no row is lost or written twice. When every chunk is done the parts
are joined into ``out`` (a temporary file renamed into place) and the folder removed.
A manifest for other inputs, another model or other settings is refused by
``--resume`` (it says what differs). Memory holds one chunk (and one part when the
parts are joined), whatever the size of the inputs.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from launchml.errors import ConfigError, InputError, LaunchmlError

# --out suffixes of a scored file (the input columns, or the image's file, + predictions)
TABLE_OUT = {".csv": "csv", ".parquet": "parquet", ".pq": "parquet", ".jsonl": "jsonl",
             ".ndjson": "jsonl"}
TABLE_CHUNK_ROWS = 4096  # rows scored (and written as one part) at a time
IMAGE_CHUNK = 256  # images per part
PART_EXT = {"csv": ".csv", "parquet": ".parquet", "jsonl": ".jsonl"}


def parts_dir(out: Path) -> Path:
    return out.parent / f".{out.name}.parts"


def isolate(score: Callable[[Any], list[dict[str, Any]]], items: Any) -> list[dict[str, Any]]:
    """``score(items)``, one result per item; when a bad input makes the whole part fail,
    the part is halved until each bad input stands alone and gets ``{"error": message}``."""
    try:
        return score(items)
    except InputError as e:
        if len(items) == 1:
            return [{"error": str(e)}]
        mid = len(items) // 2
        take = items.iloc if hasattr(items, "iloc") else items  # a DataFrame, or a list
        return isolate(score, take[:mid]) + isolate(score, take[mid:])


def naming(e: Exception, source: Any) -> Exception:
    """``e`` with the input it is about in its message (the same error type)."""
    return e if str(source) in str(e) else type(e)(f"'{source}': {e}")


def prediction_columns(rows: list[dict[str, Any]], labels: list[str], *, errors: bool
                       ) -> dict[str, Any]:
    """``prediction``, one ``probability_<label>`` per label (none for regression) and,
    with ``errors``, ``error`` ('' for a scored row; a bad row's predictions are empty)."""
    import pandas as pd

    def prediction(r: dict[str, Any]) -> Any:
        if "error" in r:
            return None
        return "|".join(r["labels"]) if "labels" in r else r["label"] if "label" in r \
            else r["value"]

    pred = [prediction(r) for r in rows]
    cols: dict[str, Any] = {"prediction": pred}
    if labels and all(p is None for p in pred):  # a text column even with no text in it
        cols["prediction"] = pd.array(pred, dtype="string")
    elif not labels and errors:
        cols["prediction"] = [float("nan") if p is None else p for p in pred]
    for lab in labels:
        cols[f"probability_{lab}"] = [float("nan") if "error" in r else r["probabilities"][lab]
                                      for r in rows]
    if errors:
        cols["error"] = [r.get("error", "") for r in rows]
    return cols


def scored_frame(chunk: Any, rows: list[dict[str, Any]], labels: list[str], path: Path, *,
                 errors: bool = False) -> Any:
    """The chunk's columns (and its index, if named), then the prediction columns."""
    import pandas as pd

    cols = prediction_columns(rows, labels, errors=errors)
    clash = [c for c in cols if c in chunk.columns]
    if clash:
        raise InputError(f"'{path}' already has column(s) {clash}, which the scored table "
                         "adds. Fix: rename or drop them in the input.")
    named = any(n is not None for n in chunk.index.names)  # e.g. a Parquet file's saved index
    chunk = chunk.reset_index(drop=not named)
    return pd.concat([chunk, pd.DataFrame(cols)], axis=1)


def table_chunks(predictor: Any, path: Path, skip: bool, chunk_rows: int = TABLE_CHUNK_ROWS
                 ) -> Iterator[tuple[Any, Callable[[], list[dict[str, Any]]]]]:
    """(chunk, a function scoring it) for a table file read as training read its table.

    The chunk is read whether or not it is scored (a resumed run skips scoring the done
    ones). With ``skip`` a row that cannot be scored gets ``{"error": message}``; an
    error of the file's (unreadable, a column missing) is raised, naming it.
    """
    from launchml.data.preprocess import transform_table
    from launchml.data.tables import iter_table

    provenance = predictor.package.meta["provenance"]
    reader = provenance.get("reader") or provenance.get("config", {}).get("data", {})
    states = predictor.package.preprocessing
    base = Path(path).parent  # relative image paths in a table are relative to its folder

    def score(df: Any) -> list[dict[str, Any]]:
        arrays = transform_table(states, df, base_dir=base)
        return predictor.task.decode(predictor.logits(arrays), predictor.package.threshold)

    def scorer(chunk: Any) -> Callable[[], list[dict[str, Any]]]:
        def run() -> list[dict[str, Any]]:
            try:
                return score(chunk)
            except InputError as e:
                if not skip or any(c not in chunk.columns for c in states):
                    raise naming(e, path) from None
                return isolate(score, chunk)
        return run

    for chunk in iter_table(path, chunk_rows=chunk_rows, delimiter=reader.get("delimiter"),
                            encoding=reader.get("encoding"), decimal=reader.get("decimal")):
        yield chunk, scorer(chunk)


def _fingerprint(paths: list[Path]) -> list[dict[str, Any]]:
    out = []
    for p in paths:
        st = os.stat(p)
        out.append({"path": str(Path(p).resolve()), "bytes": st.st_size,
                    "modified_ns": st.st_mtime_ns})
    return out


@dataclass
class _Job:
    """What a set of parts was made from; a resumed run must match it exactly."""

    model: str
    inputs: list[dict[str, Any]]
    chunk: int
    format: str
    on_bad_input: str

    def differences(self, other: dict[str, Any]) -> list[str]:
        return [k for k, v in self.__dict__.items() if other.get(k) != v]


def score_to_file(predictor: Any, inputs: list[Path], out: Path, *, resume: bool = False,
                  skip: bool = False, chunk: int | None = None,
                  progress: bool = True) -> dict[str, int]:
    """Score ``inputs`` into ``out`` (.csv, .parquet or .jsonl) through resumable parts;
    return ``{"rows", "bad", "resumed_rows"}``.

    Table models write the input columns plus ``prediction`` and ``probability_<label>``
    (and ``error`` with ``skip``); image models write ``file`` plus the same columns.
    """
    from launchml import console
    from launchml.registry.store import content_hash, package_files
    from launchml.runs import read_json, write_json

    fmt = TABLE_OUT.get(out.suffix.lower())
    if fmt is None:
        raise ConfigError(f"--out '{out}': a scored file is .csv, .parquet or .jsonl.")
    images = predictor.image_column is not None
    if images:
        from launchml.deploy.predictor import expand_paths

        sources = expand_paths(inputs)  # sorted: the same order on every run
        files = sorted({Path(s) for s in sources})
    else:
        files = [Path(p) for p in inputs]
        for p in files:
            if not p.is_file():
                raise InputError(f"'{p}' does not exist or is not a file. Fix: pass table "
                                 "files (.csv, .parquet, .jsonl).")
    if chunk is None:
        from launchml.deploy import predictor as predictor_module

        chunk = IMAGE_CHUNK if images else predictor_module.TABLE_CHUNK
    folder, names = package_files(predictor.package.path)
    job = _Job(model=content_hash(folder, names), inputs=_fingerprint(files), chunk=chunk,
               format=fmt, on_bad_input="skip" if skip else "error")
    parts = parts_dir(out)
    manifest_path = parts / "manifest.json"
    done: list[dict[str, Any]] = []
    if manifest_path.exists():
        manifest = read_json(manifest_path)
        if not resume:
            console.info(f"predict: discarding the {len(manifest['parts'])} scored chunks of "
                         f"an interrupted run in {parts} (--resume continues it instead)")
            shutil.rmtree(parts)
        else:
            diff = job.differences(manifest["job"])
            if diff:
                raise ConfigError(
                    f"--resume: {parts} was made with other {', '.join(diff)} (the model, "
                    "the input files' size and time, the chunk size, the format or "
                    "--on-bad-input must be the same). Fix: run without --resume to start "
                    "over.")
            done = manifest["parts"]
            console.info(f"predict: resuming after {sum(p['rows'] for p in done)} rows "
                         f"({len(done)} chunks) in {parts}")
    elif resume:
        console.info(f"predict: nothing to resume ({parts} does not exist); starting")
    parts.mkdir(parents=True, exist_ok=True)
    if not done:
        write_json(manifest_path, {"job": job.__dict__, "parts": [], "columns": None})
    columns: list[str] | None = read_json(manifest_path).get("columns")
    resumed = sum(p["rows"] for p in done)

    if images:
        batches = ((sources[s:s + chunk], s) for s in range(0, len(sources), chunk))
        pieces: Iterator[tuple[Any, Callable[[], Any], Any]] = (
            (part, _image_scorer(predictor, part, skip), part[0]) for part, _ in batches)
        total: int | None = len(sources)
    else:
        pieces = ((c, score, path) for path in files
                  for c, score in table_chunks(predictor, path, skip, chunk))
        total = _known_rows(files)

    try:
        n, bad = _score_parts(predictor, pieces, done, columns, images, fmt, skip, parts,
                              manifest_path, job, progress and not console.quiet(), total,
                              out)
    except LaunchmlError:
        # bad data fails the same way again: nothing to resume (a kill or Ctrl-C keeps them)
        shutil.rmtree(parts, ignore_errors=True)
        raise
    _join(parts, len(done), fmt, out)
    shutil.rmtree(parts)
    console.info(f"predict: {n - bad} rows scored" + (f", {bad} with an error" if bad else "")
                 + (f" ({resumed} before the resume)" if resumed else "") + f" -> {out}")
    return {"rows": n, "bad": bad, "resumed_rows": resumed}


def _score_parts(predictor: Any, pieces: Iterator[tuple[Any, Callable[[], Any], Any]],
                 done: list[dict[str, Any]], columns: list[str] | None, images: bool,
                 fmt: str, skip: bool, parts: Path, manifest_path: Path, job: _Job,
                 show: bool, total: int | None, out: Path) -> tuple[int, int]:
    """Score the chunks the manifest does not list, one part file each; (rows, bad)."""
    from launchml.runs import write_json

    n = bad = 0
    with _progress(show, total, out) as advance:
        for i, (piece, score, source) in enumerate(pieces):
            if i < len(done):  # scored before the kill: read, not scored again
                n += done[i]["rows"]
                bad += done[i]["bad"]
                advance(done[i]["rows"])
                continue
            rows = score()
            if images and fmt == "jsonl":  # the JSON lines of stdout: file, label, ...
                frame = [{"file": f, **{k: v for k, v in r.items() if k != "input"}}
                         for f, r in zip(piece, rows, strict=True)]
            elif images:
                frame = _image_frame(piece, rows, predictor.labels, skip)
            else:
                frame = scored_frame(piece, rows, predictor.labels, Path(source), errors=skip)
            if isinstance(frame, list):
                pass
            elif columns is None:
                columns = list(frame.columns)
            elif list(frame.columns) != columns:
                raise InputError(f"'{source}': the rows from output row {n} on have columns "
                                 f"{list(frame.columns)}, but the output began with {columns}."
                                 " Fix: score tables with different columns into separate "
                                 "files.")
            _write_part(frame, parts / f"part-{i:06d}{PART_EXT[fmt]}", fmt)
            b = sum("error" in r for r in rows)
            done.append({"rows": len(frame), "bad": b})
            write_json(manifest_path, {"job": job.__dict__, "parts": done, "columns": columns})
            n += len(frame)
            bad += b
            advance(len(frame))
    return n, bad


def _known_rows(files: list[Path]) -> int | None:
    """The total row count when it is known without reading the data (Parquet footers)."""
    total = 0
    for p in files:
        if p.suffix.lower() not in (".parquet", ".pq"):
            return None
        import pyarrow.parquet as pq

        total += pq.ParquetFile(p).metadata.num_rows
    return total


def _image_scorer(predictor: Any, part: list[str], skip: bool
                  ) -> Callable[[], list[dict[str, Any]]]:
    def score(items: list[str]) -> list[dict[str, Any]]:
        return list(predictor.iter_predict(items))

    return lambda: isolate(score, part) if skip else score(part)


def _image_frame(part: list[str], rows: list[dict[str, Any]], labels: list[str],
                 skip: bool) -> Any:
    import pandas as pd

    return pd.DataFrame({"file": part, **prediction_columns(rows, labels, errors=skip)})


def _write_part(frame: Any, path: Path, fmt: str) -> None:
    """One part file, written atomically: a DataFrame, or a list of JSON rows."""
    from launchml.runs import atomic_path

    with atomic_path(path) as tmp:
        if isinstance(frame, list):
            import json

            with open(tmp, "w", encoding="utf-8") as f:
                f.writelines(json.dumps(r) + "\n" for r in frame)
        elif fmt == "parquet":
            frame.to_parquet(tmp, index=False)
        elif fmt == "csv":
            frame.to_csv(tmp, index=False)
        else:
            frame.to_json(tmp, orient="records", lines=True, date_format="iso",
                          force_ascii=False)


def _join(parts: Path, count: int, fmt: str, out: Path) -> None:
    """Join the parts into ``out`` one part at a time (atomic: renamed into place)."""
    from launchml.runs import atomic_path

    files = [parts / f"part-{i:06d}{PART_EXT[fmt]}" for i in range(count)]
    with atomic_path(out) as tmp:
        if fmt == "parquet":
            import pyarrow as pa
            import pyarrow.parquet as pq

            writer = None
            try:
                for f in files:
                    table = pq.read_table(f)
                    if writer is None:
                        writer = pq.ParquetWriter(tmp, table.schema)
                    elif not table.schema.equals(writer.schema, check_metadata=False):
                        try:  # a later chunk's types may differ: int64 then float64 (NaN)
                            table = table.cast(writer.schema)
                        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
                            raise InputError(
                                f"the scored rows of {f.name} have column types "
                                f"{table.schema} but the first ones {writer.schema}; a Parquet "
                                "file keeps one type per column. Fix: write --out as .csv or "
                                ".jsonl.") from None
                    writer.write_table(table)
                if writer is None:  # no rows at all
                    pa.table({}).to_pandas().to_parquet(tmp)
            finally:
                if writer is not None:
                    writer.close()
            return
        with open(tmp, "wb") as dst:
            for i, f in enumerate(files):
                with open(f, "rb") as src:
                    if fmt == "csv" and i > 0:
                        src.readline()  # each part has the header; the file has it once
                    shutil.copyfileobj(src, dst)


class _progress:
    """A progress bar on stderr (rows scored); a no-op when quiet."""

    def __init__(self, show: bool, total: int | None, out: Path) -> None:
        self.show, self.total, self.out = show, total, out
        self._bar: Any = None

    def __enter__(self) -> Callable[[int], None]:
        if not self.show:
            return lambda _: None
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        from launchml.console import console

        self._bar = Progress(TextColumn("predict"), BarColumn(), MofNCompleteColumn(),
                             TextColumn("rows"), TimeElapsedColumn(), TimeRemainingColumn(),
                             console=console, transient=False)
        self._bar.start()
        task = self._bar.add_task("rows", total=self.total)
        return lambda k: self._bar.advance(task, k)

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self._bar.stop()
