"""``launchml init``, ``launchml run``, ``launchml train``."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer

from launchml.cli.main import app, handle_errors

if TYPE_CHECKING:
    from launchml.runs import RunDir


@app.command()
@handle_errors
def init(template: str = typer.Argument(
        "image-classification", help="template name: image-classification (a folder of "
        "images, one sub-folder per class) or tabular (a CSV/Parquet/JSON Lines table)")) -> None:
    """Print a commented config to edit: launchml init image-classification > my.yaml"""
    from launchml.config import template as load_template

    typer.echo(load_template(template), nl=False)


def _run(config: Path, stages: list[str] | None, resume: bool, overwrite: bool,
         overrides: list[str], verb: str = "run", stages_arg: str = "") -> None:
    from launchml.config import RunConfig
    from launchml.pipeline import run as run_pipeline

    cfg = RunConfig.load(config)
    if overrides:
        cfg = cfg.with_overrides(overrides)
    try:
        run_pipeline(cfg, stages=stages, resume=resume, overwrite=overwrite)
    except KeyboardInterrupt:  # Ctrl-C: one line saying how to go on, exit 130, no traceback
        typer.echo(_interrupted(cfg.run_dir, verb, config, stages_arg, overrides), err=True)
        raise typer.Exit(130) from None


def _interrupted(run_dir: RunDir, verb: str, config: Path, stages_arg: str,
                 overrides: list[str]) -> str:
    """What an interrupted run leaves to go on from, and the command that does it."""
    import shlex

    sets = [a for o in overrides for a in ("--set", o)]
    again = ["launchml", verb, str(config), *(["--stages", stages_arg] if stages_arg else []),
             *sets]
    if (run_dir.checkpoints / "last.ckpt").exists():
        return (f"interrupted: the last checkpoint is in '{run_dir.checkpoints}'. "
                f"Continue with --resume: {shlex.join([*again, '--resume'])}")
    if (run_dir.model / "package.json").exists():
        rest = ["launchml", "run", str(config), "--stages", "optimize,evaluate,deploy", *sets]
        return (f"interrupted: the trained model is in '{run_dir.model}' (no checkpoint to "
                f"--resume from). Finish the other stages with: {shlex.join(rest)}")
    return ("interrupted before the first checkpoint, so there is nothing to --resume. "
            f"Start again with: {shlex.join(again)}")


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
    _run(config, chosen, resume, overwrite, overrides, "run", stages)


@app.command()
@handle_errors
def train(
    config: Path = typer.Argument(..., help="the run config (YAML)"),
    resume: bool = _RESUME,
    overwrite: bool = _OVERWRITE,
    overrides: list[str] = _SET,
) -> None:
    """Run prepare and train only (writes the model package without ONNX)."""
    _run(config, ["prepare", "train"], resume, overwrite, overrides, "train")
