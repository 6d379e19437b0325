"""Migrations build exactly the schema the ORM declares, on both backends."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import text

from aimass.store.db import Database
from aimass.store.orm import Base


def test_migrated_schema_matches_the_orm(db_url: str) -> None:
    db = Database(db_url)
    try:
        db.upgrade()  # idempotent: already at head
        with db.engine.connect() as conn:
            assert compare_metadata(MigrationContext.configure(conn), Base.metadata) == []
            projects = conn.execute(text("SELECT name FROM projects")).scalars().all()
        assert projects == ["default"]
    finally:
        db.close()
