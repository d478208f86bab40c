"""``launchml evaluate``: score a model package on new labelled data."""

from __future__ import annotations

from pathlib import Path

import typer

from launchml.cli.main import app, handle_errors


@app.command()
@handle_errors
def evaluate(
    model: Path = typer.Argument(..., help="a model package (runs/<name>/model), run folder "
                                 "or package .zip"),
    data: Path = typer.Option(..., "--data", help="labelled data: for an image model, a "
                              "folder with one sub-folder per class; for a table model, a "
                              "table file with the target column"),
    out: Path | None = typer.Option(None, "--out", help="also write every metric here as "
                                    "JSON (e.g. evaluation/metrics.json), and the HTML report "
                                    "(report.html) and MODEL_CARD.md beside it"),
    report: bool = typer.Option(True, "--report/--no-report", help="with --out: write "
                                "report.html and MODEL_CARD.md beside the metrics"),
    engine: str = typer.Option("auto", "--engine", help="auto | torch | onnx"),
) -> None:
    """Score a model on new labelled data with the metrics `launchml run` reports.

    The data go through the package's fitted preprocessing, as in `launchml predict`.
    Prints the main metrics (stdout); --out writes all of them (per class, confusion
    matrix ...) as JSON, and the HTML report a run's evaluate stage writes (charts,
    slices, errors, explanations) as report.html in the same folder.
    """
    from launchml.console import verbosity
    from launchml.deploy.predictor import Predictor
    from launchml.evaluate.evaluate import evaluate_package, summary

    html = out.with_name("report.html") if out is not None and report else None
    predictor = Predictor.load(model, engine=engine)  # type: ignore[arg-type]
    with verbosity(0):  # the summary is printed below, on stdout; warnings still show
        metrics = evaluate_package(predictor, data, out=out, report=html)
    typer.echo(f"{data}: n={metrics['n']} {summary(metrics)}"
               + (f" (all metrics: {out})" if out is not None else ""))
    if html is not None:
        typer.echo(f"report: {html} (model card: {html.with_name('MODEL_CARD.md')})")
