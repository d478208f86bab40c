"""The registry's Python API: immutable versions, aliases, tags, audit log, artifacts."""

from __future__ import annotations

import os
import stat

import pytest
from tests.registry.conftest import package_copy

from launchml.errors import ConfigError, PackageError


def test_versions_are_numbered_hashed_and_immutable(registry, cancer_packages):
    a, b = cancer_packages
    v1 = registry.add(a, name="cancer")
    v2 = registry.add(b.parent, name="cancer")  # a run folder works too
    assert (v1.version, v2.version) == (1, 2) and v1.content_hash != v2.content_hash
    assert registry.add(a, name="cancer") == registry.get("cancer:1")  # same files: no v3
    assert [v.version for v in registry.versions("cancer")] == [1, 2]
    # files live under their hash, read-only; the source may change afterwards
    assert v1.path == registry.artifacts / "sha256" / v1.content_hash[:2] / v1.content_hash
    pkg = v1.path / "package.json"
    assert not os.stat(pkg).st_mode & (stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH)
    # the same package under another model shares the folder
    assert registry.add(a, name="other").path == v1.path
    # lineage: the run, its config, the data fingerprint, the test metrics
    lin = v2.lineage
    assert lin["run"]["name"] == "cancer1" and lin["config"]["seed"] == 1
    assert len(lin["data_fingerprint"]) == 64 and lin["task"] == "binary"
    assert 0.8 < lin["metrics"]["evaluation"]["accuracy"] <= 1
    assert "privacy" not in lin and v2.created_by == "ada"


def test_privacy_settings_are_part_of_the_lineage(registry, cancer_packages, tmp_path):
    import json

    p = package_copy(cancer_packages[0], tmp_path / "dp", "dp")
    meta = json.loads((p / "package.json").read_text())
    meta["privacy"] = {"epsilon": 3.0, "delta": 1e-5, "noise_multiplier": 1.1}
    (p / "package.json").write_text(json.dumps(meta))
    assert registry.add(p, name="dp").lineage["privacy"]["epsilon"] == 3.0


def test_aliases_move_and_the_log_says_who_when_from_to(registry, cancer_packages):
    a, b = cancer_packages
    registry.add(a, name="cancer")
    registry.add(b, name="cancer")
    registry.set_alias("cancer", "champion", 1)
    registry.set_alias("cancer", "challenger", 2)
    assert registry.get("cancer@champion").version == 1
    assert registry.get("models:/cancer@challenger").aliases == ["challenger"]
    registry.set_alias("cancer", "champion", 2)
    assert registry.get("cancer@champion").version == 2
    assert registry.get("cancer").version == 2 == registry.get("cancer@latest").version
    assert registry.model("cancer").aliases == {"challenger": 2, "champion": 2}
    registry.delete_alias("cancer", "challenger")
    moves = [(e.action, e.key, e.from_value, e.to_value) for e in registry.log("cancer")
             if e.action in ("alias", "unalias")]
    assert moves == [("alias", "champion", None, "1"), ("alias", "challenger", None, "2"),
                     ("alias", "champion", "1", "2"), ("unalias", "challenger", "2", None)]
    entry = registry.log("cancer")[-1]
    assert entry.actor == "ada" and entry.at.tzinfo is not None
    with pytest.raises(PackageError, match="no alias 'challenger'.*champion"):
        registry.get("cancer@challenger")
    with pytest.raises(PackageError, match="no version 7. Versions: 1, 2"):
        registry.set_alias("cancer", "champion", 7)
    with pytest.raises(ConfigError, match="reserved"):
        registry.set_alias("cancer", "latest", 1)


def test_tags_on_models_and_versions(registry, cancer_packages):
    registry.add(cancer_packages[0], name="cancer")
    registry.set_tag("cancer", "team", "risk")
    registry.set_tag("cancer", "team", "oncology")
    registry.set_tag("cancer", "validated", "yes", version=1)
    assert registry.model("cancer").tags == {"team": "oncology"}
    assert registry.get("cancer:1").tags == {"validated": "yes"}
    registry.delete_tag("cancer", "validated", version=1)
    assert registry.get("cancer:1").tags == {}
    tags = [(e.key, e.from_value, e.to_value) for e in registry.log("cancer")
            if e.action in ("tag", "untag")]
    assert tags == [("team", None, "risk"), ("team", "risk", "oncology"),
                    ("validated", None, "yes"), ("validated", "yes", None)]


def test_delete_guards_aliases_and_removes_unused_files(registry, cancer_packages):
    a, b = cancer_packages
    v1 = registry.add(a, name="cancer")
    v2 = registry.add(b, name="cancer")
    registry.add(a, name="twin")  # shares v1's files
    registry.set_alias("cancer", "champion", 2)
    with pytest.raises(ConfigError, match="cancer@champion -> 2.*--force"):
        registry.delete("cancer", 2)
    registry.delete("cancer", 1)
    assert v1.path.exists()  # 'twin' still uses these files
    registry.delete("cancer", 2, force=True)
    assert not v2.path.exists() and registry.model("cancer").aliases == {}
    v3 = registry.add(b, name="cancer")
    assert v3.version == 3  # numbers are never reused
    registry.delete("twin")
    assert not v1.path.exists()
    assert [m.name for m in registry.models()] == ["cancer"]
    actions = [(e.model, e.action, e.version) for e in registry.log()][-3:]
    assert actions == [("cancer", "add", 3), ("twin", "delete", 1), ("twin", "delete", None)]


def test_a_changed_artifact_is_refused(registry, cancer_packages):
    v = registry.add(cancer_packages[0], name="cancer")
    assert registry.path("cancer") == v.path
    assert registry.load("cancer:1").predict([{}] * 0) == []
    weights = next(f for f in v.path.iterdir() if f.suffix == ".safetensors")
    os.chmod(weights, 0o644)
    weights.write_bytes(weights.read_bytes()[:-4] + b"\0\0\0\0")
    with pytest.raises(PackageError, match="no longer match the version's content hash"):
        registry.path("cancer:1")


@pytest.mark.parametrize("text,parsed", [
    ("cancer", ("cancer", None, None)), ("cancer@champion", ("cancer", "champion", None)),
    ("cancer:3", ("cancer", None, 3)), ("models:/cancer/3", ("cancer", None, 3)),
    ("models:/cancer@champion", ("cancer", "champion", None))])
def test_references(text, parsed):
    from launchml.registry import parse_ref

    r = parse_ref(text)
    assert (r.name, r.alias, r.version) == parsed


@pytest.mark.parametrize("bad", ["", "can cer", "cancer@", "cancer@1x", "@champion"])
def test_bad_references_say_what_is_allowed(bad):
    from launchml.registry import parse_ref

    with pytest.raises(ConfigError, match="name@alias"):
        parse_ref(bad)


def test_unknown_model_names_the_known_ones(registry, cancer_packages):
    registry.add(cancer_packages[0], name="cancer")
    with pytest.raises(PackageError, match="no model 'cancr'. Models: cancer"):
        registry.get("cancr@champion")
    with pytest.raises(ConfigError, match="model name"):
        registry.add(cancer_packages[0], name="bad name")


def test_migrations_build_exactly_the_declared_schema(registry):
    """The Alembic revisions create what tables.py declares (nothing missing or extra)."""
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    from launchml.registry.tables import Base

    with registry._engine.connect() as conn:
        ctx = MigrationContext.configure(conn, opts={"compare_type": True})
        assert ctx.get_current_revision() is not None
        assert compare_metadata(ctx, Base.metadata) == []


def test_default_location_is_the_project_folder(tmp_path, monkeypatch, cancer_packages):
    from launchml.registry import Registry

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("LAUNCHML_REGISTRY_URL", raising=False)
    monkeypatch.delenv("LAUNCHML_REGISTRY_ARTIFACTS", raising=False)
    with Registry() as reg:
        v = reg.add(cancer_packages[0], name="cancer")
    assert (tmp_path / ".launchml" / "registry.db").is_file()
    assert v.path.is_relative_to(tmp_path / ".launchml" / "artifacts")
    monkeypatch.setenv("LAUNCHML_REGISTRY_URL", f"sqlite:///{tmp_path / 'elsewhere.db'}")
    with Registry() as reg:
        assert reg.models() == []
    assert (tmp_path / "elsewhere.db").is_file()
