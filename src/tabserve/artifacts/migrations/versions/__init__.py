"""Alembic revisions of the registry index."""
