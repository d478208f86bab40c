"""The model registry: versions, aliases, tags and an audit log in a SQL database.

    from launchml.registry import Registry
    reg = Registry()                                 # .launchml/registry.db, or
    reg = Registry("postgresql+psycopg://ml@db/registry")
    reg.add("runs/cancer/model", name="cancer")
    reg.set_alias("cancer", "champion", 1)
    predictor = reg.load("cancer@champion")

Needs the ``registry`` extra (SQLAlchemy, Alembic); imported only when used.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from launchml.registry.store import (
        LogEntry,
        ModelInfo,
        Ref,
        Registry,
        VersionInfo,
        parse_ref,
        resolve_model,
    )

__all__ = ["LogEntry", "ModelInfo", "Ref", "Registry", "VersionInfo", "parse_ref",
           "resolve_model"]


def __getattr__(name: str) -> Any:
    if name not in __all__:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    try:
        import alembic  # noqa: F401
        import sqlalchemy  # noqa: F401
    except ImportError as e:
        from launchml.errors import missing_dependency

        raise missing_dependency(e.name or "sqlalchemy", "registry", "the model registry"
                                 ) from e
    from launchml.registry import store

    return getattr(store, name)
