"""Engine and session factory for SQLite (WAL, foreign keys) and PostgreSQL."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from aimass.errors import DatabaseUnavailable

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
#: What a 503 for an unreachable database tells the caller to wait (seconds).
RETRY_AFTER_S = 2
_SQLITE_TRANSIENT = ("database is locked", "unable to open database", "disk i/o error")


def unreachable(exc: BaseException) -> bool:
    """True when ``exc`` says the database cannot be reached now, not that a statement is wrong.

    PostgreSQL: any operational or interface error (refused, reset, shutting down,
    a connection the pool found dead). SQLite: only a lock or an unopenable file;
    its other operational errors (no such table) are bugs and stay 500s.
    """
    if not isinstance(exc, DBAPIError):
        return False
    if exc.connection_invalidated:
        return True
    if not isinstance(exc, (OperationalError, InterfaceError)):
        return False
    if type(exc.orig).__module__.startswith("sqlite3"):
        return any(text in str(exc.orig).lower() for text in _SQLITE_TRANSIENT)
    return True


def unavailable(exc: BaseException) -> DatabaseUnavailable:
    """The ``DatabaseUnavailable`` to raise in place of the driver's error ``exc``."""
    del exc  # the driver's text names hosts and ports: logged, never shown
    return DatabaseUnavailable(
        "the database is unreachable right now; retry in a few seconds",
        retry_after=RETRY_AFTER_S,
    )


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def make_engine(url: str) -> Engine:
    """Create an engine; SQLite gets WAL mode and enforced foreign keys."""
    if url.startswith("sqlite"):
        path = url.split("///", 1)[-1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    return create_engine(url, pool_pre_ping=True, pool_size=5, max_overflow=10)


class Database:
    """An engine plus a session factory; ``session()`` commits or rolls back."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.engine = make_engine(url)
        self._factory = sessionmaker(self.engine, expire_on_commit=False)

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A unit of work: committed on success, rolled back on any error."""
        session = self._factory()
        try:
            yield session
            session.commit()
        except BaseException as exc:
            if not unreachable(exc):
                session.rollback()
                raise
            with contextlib.suppress(Exception):
                session.rollback()  # on a dead connection this fails too; the pool drops it
            raise unavailable(exc) from exc
        finally:
            session.close()

    def upgrade(self) -> None:
        """Apply every Alembic migration not yet applied (idempotent)."""
        upgrade_database(self.engine)

    def close(self) -> None:
        """Release every pooled connection."""
        self.engine.dispose()


def upgrade_database(engine: Engine) -> None:
    """Run Alembic's upgrade to head on ``engine``."""
    from alembic import command
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "head")
