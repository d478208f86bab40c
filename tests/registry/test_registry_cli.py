"""``launchml registry list|show|add|alias|tag|delete|log`` through the real command."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

LAUNCHML = str(Path(sys.executable).parent / "launchml")


def _cli(cwd: Path, *args: str, ok: bool = True, **env: str) -> subprocess.CompletedProcess:
    run = subprocess.run([LAUNCHML, "registry", *args], cwd=cwd, capture_output=True,
                         text=True, timeout=120,
                         env={**os.environ, "COLUMNS": "200", **env})
    assert (run.returncode == 0) == ok, run.stderr
    return run


@pytest.mark.slow
def test_the_registry_commands(tmp_path, cancer_packages, monkeypatch):
    monkeypatch.delenv("LAUNCHML_REGISTRY_URL", raising=False)
    monkeypatch.delenv("LAUNCHML_REGISTRY_ARTIFACTS", raising=False)
    a, b = (str(p) for p in cancer_packages)
    assert _cli(tmp_path, "add", a, "--name", "cancer", LAUNCHML_USER="ada"
                ).stdout.strip() == "cancer:1"
    assert (tmp_path / ".launchml" / "registry.db").is_file()  # the project's default
    assert _cli(tmp_path, "add", b, "--name", "cancer", "--alias", "challenger"
                ).stdout.strip() == "cancer:2"
    _cli(tmp_path, "alias", "cancer", "champion", "1", LAUNCHML_USER="ada")
    _cli(tmp_path, "alias", "cancer", "champion", "2", LAUNCHML_USER="bob")
    _cli(tmp_path, "tag", "cancer", "team=risk", "owner=ada")
    _cli(tmp_path, "tag", "cancer", "--version", "2", "validated=yes")

    listed = json.loads(_cli(tmp_path, "list", "--json").stdout)
    assert listed == [{"name": "cancer", "created_at": listed[0]["created_at"],
                       "versions": [1, 2], "aliases": {"challenger": 2, "champion": 2},
                       "tags": {"owner": "ada", "team": "risk"}}]
    assert "champion=2" in _cli(tmp_path, "list").stdout
    shown = _cli(tmp_path, "show", "cancer@champion").stdout
    assert "cancer version 2 (challenger, champion)" in shown and "sha256:" in shown
    assert "validated" in shown and "cancer1" in shown  # tags and the run's name
    version = json.loads(_cli(tmp_path, "show", "cancer:1", "--json").stdout)
    assert version["version"] == 1 and version["lineage"]["run"]["name"] == "cancer0"

    log = json.loads(_cli(tmp_path, "log", "cancer", "--json").stdout)
    champion = [(e["actor"], e["from_value"], e["to_value"]) for e in log
                if e["key"] == "champion"]
    assert champion == [("ada", None, "1"), ("bob", "1", "2")]
    assert "bob" in _cli(tmp_path, "log").stdout

    refused = _cli(tmp_path, "delete", "cancer", "2", ok=False)
    assert refused.returncode == 2 and "--force" in refused.stderr
    missing = _cli(tmp_path, "show", "nosuch", ok=False)
    assert missing.returncode == 1 and "no model 'nosuch'" in missing.stderr
    _cli(tmp_path, "delete", "cancer", "1")
    _cli(tmp_path, "alias", "cancer", "challenger", "--delete")
    assert json.loads(_cli(tmp_path, "show", "cancer", "--json").stdout)["model"][
        "versions"] == [2]
    # another database by URL: empty
    other = f"sqlite:///{tmp_path / 'other.db'}"
    assert json.loads(_cli(tmp_path, "list", "--json", "--url", other).stdout) == []
