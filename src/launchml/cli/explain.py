"""``launchml explain``: why the model, as served, answers what it does."""

from __future__ import annotations

from pathlib import Path

import typer

from launchml.cli.main import app, handle_errors

OUT_SUFFIXES = (".csv", ".jsonl", ".ndjson")


@app.command()
@handle_errors
def explain(
    model: Path = typer.Argument(..., help="a model package (runs/<name>/model), run folder "
                                 "or package .zip"),
    inputs: list[Path] = typer.Argument(..., help="image files/folders, or a table file"),
    rows: str | None = typer.Option(None, "--rows", help="table rows to explain, as in "
                                    "Python: 0:20 (rows 0 to 19), 5 (row 5); default: all"),
    method: str = typer.Option("auto", "--method", help="auto | tree_shap | shapley | "
                               "integrated_gradients | grad_cam | hires_cam (auto: the one "
                               "that applies)"),
    target: str | None = typer.Option(None, "--target", help="the label whose output is "
                                      "explained (default: the predicted one; binary: the "
                                      "positive label)"),
    out: Path | None = typer.Option(None, "--out", help="also write every attribution here: "
                                    ".csv (one row per input and column or token) or .jsonl "
                                    "(one explanation per line)"),
    folder: Path | None = typer.Option(None, "--dir", help="where the files go (default: the "
                                       "run's explanations/ folder, else ./explanations)"),
) -> None:
    """Why the model answers what it does, input by input.

    Prints each input's answer and main reasons; writes an overlay PNG per image and
    explanations.jsonl (every attribution, method, baseline and cost) under
    explanations/.
    """
    from launchml.console import verbosity
    from launchml.deploy.predictor import Predictor
    from launchml.errors import ConfigError
    from launchml.explain import parse_rows
    from launchml.explain.io import default_folder, write_explanations

    if out is not None and out.suffix.lower() not in OUT_SUFFIXES:
        raise ConfigError(f"--out {out}: write attributions to a .csv or .jsonl file.")
    predictor = Predictor.load(model)
    span = parse_rows(rows)
    source = [str(p) for p in inputs]
    if predictor.image_column is None:
        if len(source) != 1:
            raise ConfigError("a table model explains one table file at a time; got "
                              f"{len(source)}. Fix: launchml explain {model} <file> "
                              "--rows a:b")
        source = source[0]  # type: ignore[assignment]
    with verbosity(0):
        found = predictor.explain(source, method=method, rows=span, target=target)
    if span is not None and not found:  # not a silent "0 explained"
        from launchml.errors import InputError

        raise InputError(f"--rows {rows} selects no input of {', '.join(map(str, inputs))} "
                         "(rows count from 0; past the last row there is none). Fix: e.g. "
                         "--rows 0:20, or no --rows for every input.")
    where = folder or default_folder(predictor.package.path)
    files = write_explanations(found, where, out)
    for e in found:
        typer.echo(e.summary())
    if found:
        e = found[0]
        typer.echo(f"method: {e.method}; baseline: {e.baseline}; explained: {e.output}")
    pngs = [f for f in files if f.suffix == ".png"]
    shown = [str(f) for f in files if f.suffix != ".png"]
    if pngs:
        shown.insert(0, f"{len(pngs)} overlay PNGs in {where}")
    typer.echo(f"{len(found)} explained -> {', '.join(shown)}")
