"""``launchml optimize <run>``: build, measure and pick the variants of a trained run;
``--list`` prints the trade-off table it wrote."""

from __future__ import annotations

from pathlib import Path

import typer

from launchml.cli.main import app, handle_errors


@app.command()
@handle_errors
def optimize(
    run: Path = typer.Argument(..., help="a trained run folder (runs/<name>)"),
    list_: bool = typer.Option(False, "--list", help="print the trade-off table of the last "
                               "optimize, build nothing"),
    overrides: list[str] = typer.Option([], "--set", help="override a config value: --set "
                                        "optimize.variants=[onnx,int8,pruned]"),
) -> None:
    """Quantize, prune and distill a trained run's model, measure every variant on the
    held-out split, and deploy the one optimize.pick chooses (then `launchml serve`
    serves it)."""
    from launchml.errors import RunError
    from launchml.runs import RunDir, read_json

    rd = RunDir(run)
    summary_path = rd.variants / "summary.json"
    if list_:
        if not summary_path.exists():
            raise RunError(f"'{summary_path}' does not exist: run '{run}' has no variants yet. "
                           f"Fix: launchml optimize {run}")
        print_summary(read_json(summary_path))
        return
    if not rd.config.exists() or not (rd.model / "package.json").exists():
        raise RunError(f"'{run}' is not a trained run (no config.yaml and model/). Fix: "
                       "launchml run <config.yaml> first, then launchml optimize runs/<name>")
    from launchml.config import RunConfig
    from launchml.pipeline import run as run_pipeline

    cfg = RunConfig.load(rd.config)
    if overrides:
        cfg = cfg.with_overrides(overrides)
    # the saved config names the run folder by output_dir/name: keep this folder's
    cfg = cfg.model_copy(update={"output_dir": str(rd.root.parent), "name": rd.root.name})
    run_pipeline(cfg, stages=["optimize", "deploy"])


def print_summary(summary: dict) -> None:
    """The trade-off table (stdout), the pick and why the others were not picked."""
    from rich.console import Console
    from rich.table import Table

    from launchml.optimize.onnx_variants import trade_off_table

    rows = summary.get("rows")
    if rows is None:  # summaries before version 2: the rows by variant name
        rows = [{"variant": k, **v} for k, v in summary.items() if isinstance(v, dict)]
    out = Console(width=200)
    if not rows:  # the stage built nothing, and said why
        out.print(f"no variants: {summary.get('reason') or 'optimize built none'}",
                  highlight=False, markup=False)
        return
    out.print(trade_off_table({r["variant"]: r for r in rows}, Table))
    flags = ", ".join(summary.get("cpu_flags", [])) or "unknown"
    out.print(f"measured on the {summary.get('split', '?')} split; CPU "
              f"{summary.get('torch_cpu_capability', '?')} ({flags})")
    if summary.get("picked"):
        out.print(f"picked: {summary['picked']}", highlight=False)
    for r in rows:
        if r.get("rejected"):
            out.print(f"  {r['variant']}: {r['rejected']}", highlight=False)
