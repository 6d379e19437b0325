"""One active scheduler: a lock that only one process (or object) holds at a time.

On PostgreSQL it is a session-level advisory lock held on a dedicated
connection, so it is released when the holder's connection dies with its
process. On SQLite it is an exclusive ``flock`` on a file beside the database,
which the kernel releases when the holder's process dies.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import zlib
from pathlib import Path

from sqlalchemy import Connection, text
from sqlalchemy.exc import DBAPIError

from aimass.store.db import Database, unavailable, unreachable


def _lock_key(name: str) -> int:
    # A stable signed 64-bit key per name; crc32 is stable across processes, hash() is not.
    return 0x41494D41_00000000 | zlib.crc32(name.encode())


class Leadership:
    """Who runs the scheduler: ``try_acquire()`` is True for exactly one holder at a time.

    Call ``try_acquire`` every tick: a holder whose PostgreSQL connection broke
    finds out there and competes again.
    """

    def __init__(self, db: Database, name: str = "aimass.scheduler") -> None:
        self.db = db
        self.name = name
        self._conn: Connection | None = None
        self._fd: int | None = None
        self._held = False

    @property
    def held(self) -> bool:
        """Whether this holder was leader at its last check."""
        return self._held

    def try_acquire(self) -> bool:
        """Become (or stay) leader if nobody else is; never blocks."""
        if self.db.engine.dialect.name == "postgresql":
            try:
                self._held = self._try_postgres()
            except DBAPIError as exc:
                if not unreachable(exc):
                    raise
                # The lock died with the connection; compete again once the database is back.
                self._drop_connection()
                raise unavailable(exc) from exc
        else:
            self._held = self._try_file()
        return self._held

    def _try_postgres(self) -> bool:
        if self._conn is not None:
            try:
                self._conn.execute(text("SELECT 1"))
            except Exception:
                self._drop_connection()
            else:
                if self._held:
                    return True
        if self._conn is None:
            self._conn = self.db.engine.connect().execution_options(isolation_level="AUTOCOMMIT")
        got = self._conn.execute(
            text("SELECT pg_try_advisory_lock(:key)"), {"key": _lock_key(self.name)}
        ).scalar()
        return bool(got)

    def _lock_path(self) -> Path | None:
        database = self.db.engine.url.database
        if not database or database == ":memory:":
            return None
        safe = "".join(c if c.isalnum() or c in "._-" else "_" for c in self.name)
        return Path(database).with_name(f"{Path(database).name}.{safe}.lock")

    def _try_file(self) -> bool:
        if self._fd is not None:
            return True
        path = self._lock_path()
        if path is None:
            return True  # an in-memory database lives in one process only
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        self._fd = fd
        return True

    def _drop_connection(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(Exception):
                self._conn.invalidate()
            with contextlib.suppress(Exception):
                self._conn.close()
        self._conn = None
        self._held = False

    def release(self) -> None:
        """Stop being leader (idempotent); another contender can acquire at once."""
        if self._conn is not None:
            if self._held:
                with contextlib.suppress(Exception):
                    self._conn.execute(
                        text("SELECT pg_advisory_unlock(:key)"), {"key": _lock_key(self.name)}
                    )
            with contextlib.suppress(Exception):
                self._conn.close()
            self._conn = None
        if self._fd is not None:
            with contextlib.suppress(OSError):
                fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None
        self._held = False
