"""``launchml inspect``: how launchml reads a table, column by column, and why."""

from __future__ import annotations

from pathlib import Path

import typer

from launchml.cli.main import app, handle_errors


@app.command()
@handle_errors
def inspect(
    table: Path = typer.Argument(..., help="a CSV, TSV, Parquet or JSON Lines file"),
    target: str | None = typer.Option(None, "--target", help="the column to predict"),
    delimiter: str | None = typer.Option(None, "--delimiter", help="default: sniffed"),
    encoding: str | None = typer.Option(None, "--encoding", help="default: detected"),
    decimal: str | None = typer.Option(
        None, "--decimal", help="the numbers' decimal separator, '.' or ','; default: detected "
        "(as data.decimal)"),
    json_out: Path | None = typer.Option(None, "--json", help="also write the report here"),
) -> None:
    """Print each column's inferred type and the reason (identifiers and constants are dropped)."""
    from rich.console import Console
    from rich.table import Table

    from launchml.data.columns import DROPPED, infer_columns, target_task
    from launchml.data.tables import read_table
    from launchml.runs import write_json

    df, info = read_table(table, delimiter=delimiter, encoding=encoding, decimal=decimal)
    columns = infer_columns(df, target=target)
    out = Console(highlight=False, soft_wrap=True)
    details = ", ".join(f"{k} {v!r}" for k, v in info.items() if k not in ("path",))
    out.print(f"{table}: {details}")
    t = Table()
    for name in ("column", "type", "missing", "distinct", "why"):
        t.add_column(name)
    for c in columns:
        kind = f"{c.type} (dropped)" if c.type in DROPPED else c.type
        t.add_row(c.name, kind, str(c.missing), str(c.unique), c.reason)
    out.print(t)
    report = {"source": info, "columns": [c.to_dict() for c in columns]}
    if target is not None:
        task, why = target_task(df[target])
        out.print(f"target '{target}': {task} ({why})")
        report["target"] = {"name": target, "task": task, "reason": why}
    if json_out is not None:
        write_json(json_out, report)
