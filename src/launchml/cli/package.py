"""``launchml export``: a model package as one .zip file."""

from __future__ import annotations

from pathlib import Path

import typer

from launchml.cli.main import app, handle_errors


@app.command()
@handle_errors
def export(
    model: Path = typer.Argument(..., help="a model package (runs/<name>/model) or run folder"),
    out: Path = typer.Argument(..., help="the .zip to write (another name is refused)"),
) -> None:
    """Write a model package as one compressed .zip; predict and serve load it as they
    load a folder.

    The zip holds the package (package.json, the weights and model.onnx when the run
    made one). A variant is a package of its own: export runs/<name>/variants/int8 for
    the int8 one.
    """
    from launchml.console import info
    from launchml.deploy.package import export_zip

    info(f"export: {export_zip(model, out)}")
