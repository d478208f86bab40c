"""launchml explain --rows past the table's last row is an error naming the rows, not a
silent '0 explained'."""

from __future__ import annotations

from typer.testing import CliRunner

from launchml.cli.main import app


def test_rows_past_the_last_row_are_named(lightgbm_run, signal_csv, tmp_path):
    args = ["explain", str(lightgbm_run.dir.model), str(signal_csv), "--dir", str(tmp_path)]
    r = CliRunner().invoke(app, [*args, "--rows", "99999"])
    assert r.exit_code != 0
    assert "--rows 99999 selects no input" in r.output and "Fix:" in r.output
    ok = CliRunner().invoke(app, [*args, "--rows", "1"])
    assert ok.exit_code == 0, ok.output
    assert "1 explained" in ok.output
