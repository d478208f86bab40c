"""launchml registry delete cancer:2 is not read as a model named 'cancer:2' (whose fix
then said `registry add --name cancer:2`, a name the registry refuses): it names the
command that deletes version 2."""

from __future__ import annotations

from typer.testing import CliRunner

from launchml.cli.main import app


def test_delete_with_a_version_reference_names_the_command(tmp_path):
    url = f"sqlite:///{tmp_path / 'registry.db'}"
    r = CliRunner().invoke(app, ["registry", "delete", "cancer:2", "--url", url])
    assert r.exit_code != 0
    assert "Fix: launchml registry delete cancer 2" in r.output
    r = CliRunner().invoke(app, ["registry", "delete", "cancer@champion", "--url", url])
    assert "Fix: launchml registry delete cancer <version>" in r.output
    assert not (tmp_path / "registry.db").exists()  # refused before opening anything
