"""``launchml predict`` and ``launchml serve``."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from launchml.cli.main import app, handle_errors

_ENGINE = typer.Option("auto", "--engine", help="auto | torch | onnx")


@app.command()
@handle_errors
def predict(
    model: Path = typer.Argument(..., help="a model package (runs/<name>/model)"),
    inputs: list[Path] = typer.Argument(..., help="image files/folders, or table files"),
    engine: str = _ENGINE,
    out: Path | None = typer.Option(None, "--out", help="write JSON lines here, not stdout"),
) -> None:
    """One JSON line per image (file, label, probabilities) or table row (file, row, ...)."""
    from launchml.deploy.predictor import Predictor, expand_paths

    predictor = Predictor.load(model, engine=engine)  # type: ignore[arg-type]
    if predictor.kind == "table":
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
