"""``launchml init``, ``launchml run``, ``launchml train``."""

from __future__ import annotations

from pathlib import Path

import typer

from launchml.cli.main import app, handle_errors


@app.command()
@handle_errors
def init(template: str = typer.Argument(
        "image-classification", help="template name: image-classification (a folder of "
        "images, one sub-folder per class) or tabular (a CSV/Parquet/JSON Lines table)")) -> None:
    """Print a commented config to edit: launchml init image-classification > my.yaml"""
    from launchml.config import template as load_template

    typer.echo(load_template(template), nl=False)


def _run(config: Path, stages: list[str] | None, resume: bool, overwrite: bool,
         overrides: list[str]) -> None:
    from launchml.config import RunConfig
    from launchml.pipeline import run as run_pipeline

    cfg = RunConfig.load(config)
    if overrides:
        cfg = cfg.with_overrides(overrides)
    run_pipeline(cfg, stages=stages, resume=resume, overwrite=overwrite)


_RESUME = typer.Option(False, "--resume", help="continue from checkpoints/last.ckpt")
_OVERWRITE = typer.Option(False, "--overwrite", help="delete the run folder and start again")
_SET = typer.Option([], "--set", help="override a config value: --set train.epochs=3")


@app.command("run")
@handle_errors
def run_cmd(
    config: Path = typer.Argument(..., help="the run config (YAML)"),
    stages: str = typer.Option("", "--stages",
                               help="comma-separated subset, e.g. evaluate,deploy"),
    resume: bool = _RESUME,
    overwrite: bool = _OVERWRITE,
    overrides: list[str] = _SET,
) -> None:
    """Run prepare -> train -> optimize -> evaluate -> deploy."""
    chosen = [s.strip() for s in stages.split(",") if s.strip()] or None
    _run(config, chosen, resume, overwrite, overrides)


@app.command()
@handle_errors
def train(
    config: Path = typer.Argument(..., help="the run config (YAML)"),
    resume: bool = _RESUME,
    overwrite: bool = _OVERWRITE,
    overrides: list[str] = _SET,
) -> None:
    """Run prepare and train only (writes the model package without ONNX)."""
    _run(config, ["prepare", "train"], resume, overwrite, overrides)
