"""Alembic migrations of the registry index (run by `index.migrate()` on every open)."""
