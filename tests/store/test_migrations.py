"""Migrations build exactly the schema the ORM declares, on both backends."""

from __future__ import annotations

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, text

from aimass.store.db import MIGRATIONS_DIR, Database, applied_revisions, head_revisions
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


def _config(connection: Connection | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.attributes["connection"] = connection
    return config


def test_the_heads_read_from_the_files_are_alembics() -> None:
    assert head_revisions() == set(ScriptDirectory.from_config(_config()).get_heads())


def test_a_database_behind_head_is_upgraded(db_url: str) -> None:
    db = Database(db_url)
    try:
        with db.engine.begin() as conn:  # as a server of the previous release left it
            command.downgrade(_config(conn), "-1")
        assert applied_revisions(db.engine) != head_revisions()

        db.upgrade()

        assert applied_revisions(db.engine) == head_revisions()
        with db.engine.connect() as conn:
            assert compare_metadata(MigrationContext.configure(conn), Base.metadata) == []
    finally:
        db.close()
