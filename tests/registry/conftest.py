"""Registry fixtures: small real packages and a clean database per test.

Every registry test runs on SQLite, and on PostgreSQL when LAUNCHML_TEST_POSTGRES_URL
names a server (.ci/run starts one on the loopback with .ci/postgres.sh).
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

PG_ENV = "LAUNCHML_TEST_POSTGRES_URL"


@pytest.fixture(scope="session")
def cancer_packages(tmp_path_factory) -> list[Path]:
    """Two linear packages trained on scikit-learn's breast cancer table (two seeds)."""
    from sklearn.datasets import load_breast_cancer

    import launchml

    root = tmp_path_factory.mktemp("cancer")
    load_breast_cancer(as_frame=True).frame.to_csv(root / "cancer.csv", index=False)
    return [launchml.fit(root / "cancer.csv", target="target", model="linear",
                         name=f"cancer{seed}", seed=seed, output_dir=str(root / "runs")
                         ).dir.model for seed in (0, 1)]


def package_copy(src: Path, dst: Path, tag: str) -> Path:
    """A copy of a package with different content (so a different hash): same model."""
    shutil.copytree(src, dst)
    meta = json.loads((dst / "package.json").read_text())
    meta["provenance"]["copy"] = tag
    (dst / "package.json").write_text(json.dumps(meta))
    return dst


def _clean_postgres(url: str) -> None:
    from sqlalchemy import create_engine, text

    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(text("DROP SCHEMA public CASCADE"))
        conn.execute(text("CREATE SCHEMA public"))
    engine.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def registry_url(request, tmp_path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'db' / 'registry.db'}"
    url = os.environ.get(PG_ENV)
    if not url:
        pytest.skip(f"{PG_ENV} is not set (.ci/run starts a PostgreSQL server)")
    _clean_postgres(url)
    return url


@pytest.fixture
def registry(registry_url, tmp_path):
    from launchml.registry import Registry

    with Registry(registry_url, artifacts=tmp_path / "artifacts", actor="ada") as reg:
        yield reg
