"""Alembic migrations of the registry database (run by ``Registry`` on open)."""
