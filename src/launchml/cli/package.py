"""``launchml export``: a model package as one .zip file."""

from __future__ import annotations

from pathlib import Path

import typer

from launchml.cli.main import app, handle_errors


@app.command()
@handle_errors
def export(
    model: Path = typer.Argument(..., help="a model package (runs/<name>/model) or run folder"),
    out: Path = typer.Argument(..., help="the .zip to write"),
) -> None:
    """Write a model package as one .zip; predict and serve load it as they load a folder."""
    from launchml.console import info
    from launchml.deploy.package import export_zip

    info(f"export: {export_zip(model, out)}")
