"""Engine and session factory for SQLite (WAL, foreign keys) and PostgreSQL."""

from __future__ import annotations

import ast
import contextlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event, inspect, text
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


def _assigned(path: Path) -> dict[str, object]:
    """The ``revision`` and ``down_revision`` a migration file assigns, read without running it."""
    found: dict[str, object] = {}
    for node in ast.parse(path.read_text(encoding="utf-8")).body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1:
            target, value = node.targets[0], node.value
        elif isinstance(node, ast.AnnAssign) and node.value is not None:
            target, value = node.target, node.value
        else:
            continue
        if isinstance(target, ast.Name) and target.id in ("revision", "down_revision"):
            found[target.id] = ast.literal_eval(value)
    return found


def head_revisions() -> set[str] | None:
    """The migrations' heads, read from their files (None when a file is not plain enough).

    Importing Alembic and its script directory costs a server's start more than
    everything else it does with an up-to-date database; this costs a few ms.
    """
    revisions: set[str] = set()
    parents: set[str] = set()
    for path in sorted((MIGRATIONS_DIR / "versions").glob("*.py")):
        try:
            found = _assigned(path)
        except (SyntaxError, ValueError):
            return None
        revision, down = found.get("revision"), found.get("down_revision")
        if not isinstance(revision, str):
            return None
        revisions.add(revision)
        downs = (down,) if down is None or isinstance(down, str) else down
        if not isinstance(downs, tuple | list):
            return None
        parents.update(d for d in downs if isinstance(d, str))
    return revisions - parents or None


def applied_revisions(engine: Engine) -> set[str]:
    """The revisions Alembic recorded in this database (empty for a new one)."""
    with engine.connect() as connection:
        if not inspect(connection).has_table("alembic_version"):
            return set()
        rows = connection.execute(text("SELECT version_num FROM alembic_version"))
        return {str(row[0]) for row in rows}


def upgrade_database(engine: Engine) -> None:
    """Run Alembic's upgrade to head on ``engine``; a database at head is only read.

    The check reads the heads from the migration files and the database's
    ``alembic_version``; anything else (new, behind, ahead, unreadable files)
    goes through Alembic, which decides.
    """
    heads = head_revisions()
    if heads is not None and applied_revisions(engine) == heads:
        return
    from alembic import command
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "head")
