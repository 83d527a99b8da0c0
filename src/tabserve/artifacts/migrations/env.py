"""Alembic environment: migrate the connection `index.migrate()` hands over, under a lock."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import context

connection = context.config.attributes["connection"]
context.configure(connection=connection, transactional_ddl=True)

with context.begin_transaction():
    if connection.dialect.name == "postgresql":
        # Two processes opening an empty database at once: the second waits, then sees head.
        connection.execute(sa.text("SELECT pg_advisory_xact_lock(7261736572766501)"))
    context.run_migrations()
