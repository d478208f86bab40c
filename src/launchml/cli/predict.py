"""``launchml predict`` and ``launchml serve``."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import typer

from launchml.cli.main import app, handle_errors
from launchml.deploy.batch import TABLE_OUT
from launchml.deploy.batch import isolate as _isolate
from launchml.deploy.batch import naming as _naming
from launchml.deploy.batch import scored_frame as _scored  # noqa: F401  (tests import it)
from launchml.deploy.limits import ServerLimits

_ENGINE = typer.Option("auto", "--engine", help="auto | torch | onnx")
_LIMITS = ServerLimits()  # the server's default limits (a dataclass: no server import)


ON_BAD_INPUT = ("error", "skip")


@app.command()
@handle_errors
def predict(
    model: str = typer.Argument(..., help="a model package (runs/<name>/model), or a "
                                "registry reference: cancer@champion, cancer:3"),
    inputs: list[Path] = typer.Argument(..., help="image files/folders, or table files"),
    engine: str = _ENGINE,
    out: Path | None = typer.Option(
        None, "--out", help="write here, not stdout. A table model and a .csv, .parquet or "
        ".jsonl name: the input columns plus 'prediction' and 'probability_<label>' columns; "
        "otherwise JSON lines"),
    on_bad_input: str = typer.Option(
        "error", "--on-bad-input", help="error: stop at the first input that cannot be "
        "scored (an image that cannot be decoded, a table value that cannot be read) and name "
        "it. skip: score all the others, and give each bad input a row with an 'error' field "
        "instead of a prediction ({\"file\": ..., \"error\": ...}; a table row also has "
        "\"row\"); with --out scored.csv/.parquet/.jsonl, the bad row keeps its input columns, "
        "its prediction columns are empty and an 'error' column (empty for good rows) says "
        "why. A warning counts the bad inputs. A table file that cannot be read at all, or "
        "lacks a column the model needs, is an error row of its own in JSON lines and stops "
        "a scored-table --out."),
    resume: bool = typer.Option(
        False, "--resume", help="with --out .csv/.parquet/.jsonl: go on from where an "
        "interrupted (even killed) run of the same command stopped, without losing or "
        "repeating rows (scored chunks are kept in .<out>.parts/ until the end)"),
    chunk_rows: int | None = typer.Option(
        None, "--chunk-rows", min=1, help="rows (images) scored and saved at a time with "
        "--out .csv/.parquet/.jsonl (default 4096 rows, 256 images): memory holds one chunk"),
    progress: bool = typer.Option(True, "--progress/--no-progress",
                                  help="a progress bar on stderr with --out"),
) -> None:
    """One JSON line per image (file, label, probabilities) or table row (file, row, ...).

    A table model with --out scored.csv (or .parquet, .jsonl) writes the input rows
    with their predictions instead, chunk by chunk: files of any size fit in memory.
    An image model with --out .csv/.parquet writes file, prediction and
    probability_<label> columns (.jsonl: the JSON lines). Such a run can be --resume'd.
    """
    from launchml.deploy.predictor import Predictor
    from launchml.errors import ConfigError
    from launchml.registry.store import resolve_model

    if on_bad_input not in ON_BAD_INPUT:
        raise ConfigError(f"--on-bad-input must be 'error' or 'skip'; got {on_bad_input!r}")
    skip = on_bad_input == "skip"
    predictor = Predictor.load(resolve_model(model), engine=engine)  # type: ignore[arg-type]
    tables = predictor.image_column is None  # inputs are table files, not images
    if out is not None and out.suffix.lower() in TABLE_OUT:
        from launchml.deploy.batch import score_to_file

        score_to_file(predictor, inputs, out, resume=resume, skip=skip, chunk=chunk_rows,
                      progress=progress)
        return
    if resume:
        raise ConfigError("--resume needs --out with a .csv, .parquet or .jsonl name (the "
                          "file whose scored chunks it continues).")
    bad = [0, 0]  # bad inputs, all inputs
    rows = _counted(table_rows(predictor, inputs, skip) if tables
                    else image_rows(predictor, inputs, skip), bad)
    if out is None:
        for row in rows:  # streamed: each line as soon as its batch is scored
            typer.echo(json.dumps(row))
    else:
        from launchml.runs import atomic_path

        with atomic_path(out) as tmp, open(tmp, "w", encoding="utf-8") as f:
            for row in rows:
                f.write(json.dumps(row) + "\n")
    _warn_skipped(*bad, "an 'error' field")


def _counted(rows: Iterator[dict[str, Any]], counts: list[int]) -> Iterator[dict[str, Any]]:
    for row in rows:
        counts[0] += "error" in row
        counts[1] += 1
        yield row


def _warn_skipped(bad: int, total: int, where: str) -> None:
    if bad:
        from launchml import console

        console.warn(f"predict: {bad} of {total} inputs could not be scored (--on-bad-input "
                     f"skip); each has {where} saying why.")


def image_rows(predictor: Any, inputs: list[Path], skip: bool) -> Iterator[dict[str, Any]]:
    """``{"file", "label", "probabilities"}`` per image, a batch at a time; with ``skip`` a
    bad image (or a path that is no image file) gets ``{"file", "error"}`` instead."""
    from launchml.deploy.predictor import expand_paths
    from launchml.errors import InputError

    if skip:  # a missing path or an empty folder is one bad input, not the end
        sources: list[str] = []
        for item in inputs:
            try:
                sources += expand_paths([item])
            except InputError:
                sources.append(str(item))  # scored alone below: its error becomes its row
    else:
        sources = expand_paths(inputs)

    def score(part: list[str]) -> list[dict[str, Any]]:
        return list(predictor.iter_predict(part))

    for s in range(0, len(sources), predictor.batch_size):
        part = sources[s:s + predictor.batch_size]
        results = _isolate(score, part) if skip else score(part)
        for source, r in zip(part, results, strict=True):
            r.pop("input", None)
            yield {"file": source, **r}


def table_rows(predictor: Any, inputs: list[Path], skip: bool) -> Iterator[dict[str, Any]]:
    """``{"file", "row", ...prediction}`` per table row; with ``skip``, ``{"file", "row",
    "error"}`` for a bad row and ``{"file", "error"}`` for a file that cannot be scored."""
    from launchml.errors import DataError, InputError

    for path in inputs:
        start = 0
        results = table_results(predictor, path, skip)
        while True:
            try:
                chunk, rows = next(results)
            except StopIteration:
                break
            except (InputError, DataError) as e:
                if not skip:
                    raise
                yield {"file": str(path), "error": str(e)}
                break
            for i, r in enumerate(rows):
                yield {"file": str(path), "row": start + i, **r}
            start += len(chunk)


def table_results(predictor: Any, path: Path, skip: bool
                  ) -> Iterator[tuple[Any, list[dict[str, Any]]]]:
    """(chunk, one result per row) for a table file, read as training read its table:
    the row's prediction, or with ``skip`` ``{"error": message}`` for a row that cannot be
    scored. An error that is the file's (unreadable, a column missing) is raised, naming it.
    """
    from launchml.data.preprocess import transform_table
    from launchml.data.tables import iter_table
    from launchml.deploy.predictor import TABLE_CHUNK
    from launchml.errors import InputError

    provenance = predictor.package.meta["provenance"]
    reader = provenance.get("reader") or provenance.get("config", {}).get("data", {})
    states = predictor.package.preprocessing
    base = Path(path).parent  # relative image paths in a table are relative to its folder

    def score(df: Any) -> list[dict[str, Any]]:
        arrays = transform_table(states, df, base_dir=base)
        return predictor.task.decode(predictor.logits(arrays), predictor.package.threshold)

    chunks = iter_table(path, chunk_rows=TABLE_CHUNK, delimiter=reader.get("delimiter"),
                        encoding=reader.get("encoding"), decimal=reader.get("decimal"))
    for chunk in chunks:
        try:
            rows = score(chunk)
        except InputError as e:
            if not skip or any(c not in chunk.columns for c in states):
                raise _naming(e, path) from None
            rows = _isolate(score, chunk)
        yield chunk, rows


@app.command()
@handle_errors
def serve(
    model: Path | None = typer.Argument(None, help="a model package (runs/<name>/model); "
                                        "or use --models"),
    host: str = typer.Option("127.0.0.1", "--host", help="127.0.0.1: this machine only; "
                             "0.0.0.0: every network interface (warned: no authentication)"),
    port: int = typer.Option(8000, "--port"),
    engine: str = _ENGINE,
    max_body_mb: float = typer.Option(_LIMITS.max_body_mb, "--max-body-mb",
                                      help="largest request body, MiB (413 beyond)"),
    max_batch: int = typer.Option(_LIMITS.max_batch, "--max-batch",
                                  help="most images in one request (413 beyond)"),
    max_records: int = typer.Option(_LIMITS.max_records, "--max-records",
                                    help="most table records or CSV rows in one request"),
    max_pixels: int | None = typer.Option(
        None, "--max-pixels", help="most pixels of one image, checked before decoding "
        "(default: 256 x the model's input size, at least 4096 x 4096; a larger JPEG is "
        "decoded at 1/2 to 1/8 scale when that fits, anything else is a 413)"),
    max_concurrent: int = typer.Option(_LIMITS.max_concurrent, "--max-concurrent",
                                       help="predictions computing at once"),
    max_queue: int = typer.Option(_LIMITS.max_queue, "--max-queue",
                                  help="requests waiting for a free slot (503 beyond)"),
    request_timeout: float = typer.Option(_LIMITS.request_timeout_s, "--request-timeout",
                                          help="seconds for a request to arrive in full"),
    idle_timeout: float = typer.Option(_LIMITS.idle_timeout_s, "--idle-timeout",
                                       help="seconds a silent connection stays open"),
    max_connections: int = typer.Option(_LIMITS.max_connections, "--max-connections",
                                        help="open connections; beyond, the oldest idle "
                                        "one is closed"),
    image_root: Path | None = typer.Option(
        None, "--image-root", help="image columns of table records may name files inside "
        "this folder (relative paths); without it a record's image must be base64 data "
        "and the server opens no path a request names"),
    models: list[str] = typer.Option(
        [], "--models", help="serve these (comma-separated or repeated) on "
        "/v1/models/<name>/...: package paths, or with --registry name@alias (followed: a "
        "moved alias is loaded, smoke-tested and swapped in without a restart), name:3 or "
        "name; 'route=spec' names the route"),
    registry: bool = typer.Option(False, "--registry", help="--models are registry "
                                  "references (LAUNCHML_REGISTRY_URL, else .launchml/)"),
    api_key_file: Path | None = typer.Option(
        None, "--api-key-file", help="API keys: lines '<key or sha256:hex> predict[,admin]' "
        "(also LAUNCHML_API_KEYS); without keys the model routes are open"),
    workers: int = typer.Option(1, "--workers", min=1, help="server processes sharing the "
                                "port (each loads the models)"),
    max_batch_size: int = typer.Option(32, "--max-batch-size", min=1,
                                       help="inputs scored together (1: no batching)"),
    max_wait_ms: float = typer.Option(5.0, "--max-wait-ms", min=0.0,
                                      help="how long a batch waits for more inputs"),
    poll_seconds: float = typer.Option(2.0, "--poll-seconds", min=0.0,
                                       help="how often aliases are checked (0: never)"),
    cors_origin: list[str] = typer.Option([], "--cors-origin", help="allow browser calls "
                                          "from this origin (repeatable; default: none)"),
    hash_key: str | None = typer.Option(None, "--hash-key", help="print the key-file line "
                                        "for this key (predict scope) and exit"),
) -> None:
    """Serve models over REST. One package: POST /v1/predict, GET /healthz, docs at /docs.
    With --models (and --registry): several models on /v1/models/<name>/predict, micro-
    batching, API keys, /metrics, /readyz, and roll-outs that follow registry aliases.

    Every limit has a default that keeps a small machine serving under hostile input
    (README: "Server limits")."""
    from launchml.deploy.limits import ServerLimits
    from launchml.deploy.predictor import Predictor
    from launchml.deploy.server import serve as run_server
    from launchml.errors import ConfigError

    if hash_key is not None:
        from launchml.deploy.auth import hash_key as hashed

        typer.echo(f"{hashed(hash_key)} predict")
        return
    limits = ServerLimits(max_body_mb=max_body_mb, max_batch=max_batch, max_records=max_records,
                          max_pixels=max_pixels, max_concurrent=max_concurrent,
                          max_queue=max_queue, request_timeout_s=request_timeout,
                          idle_timeout_s=idle_timeout, max_connections=max_connections,
                          image_root=_image_root(image_root))
    reference = model is not None and not model.exists() and "@" in str(model)
    # keys from LAUNCHML_API_KEYS alone must not leave the single-package server open
    env_keys = bool(os.environ.get("LAUNCHML_API_KEYS", "").strip())
    if models or registry or workers > 1 or api_key_file is not None or env_keys or reference:
        _serve_models([*([str(model)] if model else []), *models], registry, limits,
                      host=host, port=port, engine=engine, api_key_file=api_key_file,
                      workers=workers, max_batch_size=max_batch_size,
                      max_wait_ms=max_wait_ms, poll_seconds=poll_seconds,
                      cors_origin=cors_origin)
        return
    if model is None:
        raise ConfigError("give a model package, or --models (e.g. launchml serve --registry "
                          "--models cancer@champion)")
    run_server(Predictor.load(model, engine=engine), host=host, port=port,  # type: ignore[arg-type]
               limits=limits)


def _image_root(folder: Path | None) -> str | None:
    """--image-root: an existing folder, kept as its resolved path."""
    from launchml.errors import ConfigError

    if folder is None:
        return None
    if not folder.is_dir():
        raise ConfigError(f"--image-root '{folder}' is not a folder. Fix: name the folder "
                          "the records' relative image paths are read from.")
    return str(folder.resolve())


def _serve_models(specs: list[str], registry: bool, limits: Any, *, host: str, port: int,
                  engine: str, api_key_file: Path | None, workers: int, max_batch_size: int,
                  max_wait_ms: float, poll_seconds: float, cors_origin: list[str]) -> None:
    """The multi-model server (deploy/app.py)."""
    from launchml import console
    from launchml.deploy.app import serve_models
    from launchml.deploy.auth import ApiKeys
    from launchml.deploy.models import ServeOptions, Source
    from launchml.deploy.server import exposure_warning
    from launchml.errors import ConfigError

    items = [s.strip() for spec in specs for s in spec.split(",") if s.strip()]
    if not items:
        raise ConfigError("--registry needs --models, e.g. --models cancer@champion")
    sources = [Source.parse(s, registry=registry) for s in items]
    keys = ApiKeys.load(api_key_file)
    if not keys.enabled:
        warning = exposure_warning(host, port)
        if warning:
            console.warn(warning)
    options = ServeOptions(engine=engine, max_batch_size=max_batch_size,
                           max_wait_ms=max_wait_ms, poll_s=poll_seconds, limits=limits,
                           cors_origins=tuple(cors_origin), api_keys=keys)
    serve_models(sources, options, host=host, port=port, workers=workers)
