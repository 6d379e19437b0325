"""Alembic environment: runs on the connection that ``upgrade_database`` passes in."""

from __future__ import annotations

from alembic import context

from aimass.store.orm import Base

connection = context.config.attributes.get("connection")
if connection is None:  # pragma: no cover - only via `alembic` CLI
    from aimass.config import Settings
    from aimass.store.db import make_engine

    engine = make_engine(Settings().resolved_database_url)
    with engine.begin() as conn:
        context.configure(connection=conn, target_metadata=Base.metadata, render_as_batch=True)
        with context.begin_transaction():
            context.run_migrations()
else:
    context.configure(connection=connection, target_metadata=Base.metadata, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()
