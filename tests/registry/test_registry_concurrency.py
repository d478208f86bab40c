"""Concurrent writers (separate processes) never corrupt the registry."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from tests.registry.conftest import package_copy

WRITER = """
import json, sys
from launchml.registry import Registry
url, artifacts, who, packages = json.loads(sys.argv[1])
with Registry(url, artifacts=artifacts, actor=who) as reg:  # a new database: all migrate
    for p in packages:
        v = reg.add(p, name="cancer")
        reg.set_alias("cancer", "champion", v.version)
        reg.set_tag("cancer", "last_writer", who)
        reg.add(packages[0], name="cancer")  # the same files again: no new version
"""


@pytest.mark.slow
def test_parallel_processes_add_version_alias_and_tag(registry_url, tmp_path, cancer_packages):
    from launchml.registry import Registry

    writers, per_writer = 4, 3
    artifacts = tmp_path / "artifacts"
    jobs = []
    for w in range(writers):
        packages = [str(package_copy(cancer_packages[0], tmp_path / f"p{w}_{i}", f"{w}.{i}"))
                    for i in range(per_writer)]
        args = json.dumps([registry_url, str(artifacts), f"writer{w}", packages])
        jobs.append(subprocess.Popen([sys.executable, "-c", WRITER, args],
                                     stderr=subprocess.PIPE, text=True))
    errors = [p.communicate(timeout=300)[1] for p in jobs]
    assert [p.returncode for p in jobs] == [0] * writers, errors

    with Registry(registry_url, artifacts=artifacts) as reg:
        versions = reg.versions("cancer")
        n = writers * per_writer
        assert [v.version for v in versions] == list(range(1, n + 1))  # no gap, no twin
        assert len({v.content_hash for v in versions}) == n
        for v in versions:
            reg.verify(v)  # every artifact folder complete and matching its hash
        log = reg.log("cancer")
        assert sorted(e.version for e in log if e.action == "add") == list(range(1, n + 1))
        moves = [e for e in log if e.action == "alias"]
        assert len(moves) == n
        # each move starts where the one before it (in commit order) ended
        assert [m.from_value for m in moves] == [None, *[m.to_value for m in moves[:-1]]]
        assert reg.get("cancer@champion").version == int(moves[-1].to_value)
        # the tag holds what the last tag entry wrote (alias and tag are two transactions:
        # the last to move the alias need not be the last to tag)
        tags = [e for e in log if e.action == "tag"]
        assert len(tags) == n and all(e.to_value == e.actor for e in tags)
        assert reg.model("cancer").tags["last_writer"] == tags[-1].to_value
        assert sorted({m.actor for m in moves}) == [f"writer{w}" for w in range(writers)]
    assert not any((artifacts / "tmp").iterdir())  # no half-written folder left behind
    if registry_url.startswith("sqlite"):
        import sqlite3

        db = sqlite3.connect(registry_url.removeprefix("sqlite:///"))
        assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        db.close()
