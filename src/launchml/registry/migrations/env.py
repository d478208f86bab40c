"""Alembic environment: migrates the connection ``launchml.registry`` hands over.

Run by ``launchml.registry.store.migrate`` inside its own locked transaction, so two
processes opening a new database at once migrate it once.
"""

from __future__ import annotations

from alembic import context

from launchml.registry.tables import Base

connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=Base.metadata,
                  render_as_batch=connection.dialect.name == "sqlite")
with context.begin_transaction():
    context.run_migrations()
