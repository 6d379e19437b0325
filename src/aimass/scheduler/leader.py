"""One leader at a time, with fencing: a lease row in the database that carries an epoch.

The leader holds the row ``leader_leases[name]`` (holder, expiry, epoch) and
renews it while it runs. A contender takes the row over, raising the epoch by
one, when the lease ran out or when the holder is visibly gone: on PostgreSQL
its dedicated connection's backend left ``pg_stat_activity`` (a killed process
loses it at once), on SQLite its process on this host is gone. So a crashed
leader is replaced within a second, and a paused or partitioned one (whose
connection lingers) within its lease.

``try_acquire(fresh=False)`` is the cheap question a loop's gate asks: a
contender that found a live holder less than ``recheck_s`` ago answers False
without the database. Every leader-only loop asks before each tick and every
submission (NOTIFY) wakes them, so a follower otherwise ran the lease queries
(``pg_stat_activity`` included) several times per job, for nothing, taking CPU
from the leader on shared cores. The loop that competes for the lease
(``LeaseKeeper``) asks with ``fresh=True``, so takeovers are as quick as before.

A leader that was paused may wake up still believing it leads. Its writes are
safe anyway: every leader-only transaction starts with ``fence(session)``, a
conditional UPDATE of the lease row on ``(name, holder, epoch)``. After a
takeover it matches no row and raises ``StaleLeadership``, so the transaction
changes nothing; before one, it locks the row, and the takeover waits for the
write to commit (PostgreSQL row lock, SQLite's single writer).
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import time
import uuid
from datetime import datetime, timedelta

from sqlalchemy import Connection, Table, func, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from aimass.errors import StaleLeadership
from aimass.store.db import Database
from aimass.store.orm import LeaderLeaseRow, aware_utc, utcnow

log = logging.getLogger("aimass.scheduler")

_LEASE: Table = LeaderLeaseRow.__table__  # type: ignore[assignment]

__all__ = ["Leadership", "StaleLeadership"]

_IDLE = "idle_in_transaction_session_timeout"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class Leadership:
    """Who runs the leader-only work: ``try_acquire()`` is True for one holder at a time.

    Call ``try_acquire`` often (every tick, or from a renewing loop): it renews
    the lease when half of it is gone and is how a contender takes over.
    ``epoch`` is the takeover counter this holder won; ``fence(session)`` checks
    it inside a leader-only transaction.
    """

    def __init__(
        self,
        db: Database,
        name: str = "aimass.scheduler",
        lease_s: float = 10.0,
        recheck_s: float | None = None,
    ) -> None:
        self.db = db
        self.name = name
        self.lease_s = lease_s
        #: How long a contender that saw a live holder answers False without asking again.
        self.recheck_s = min(0.25, lease_s / 10) if recheck_s is None else recheck_s
        self._recheck_after = 0.0  # monotonic time before which a contender does not ask
        self.holder = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._conn: Connection | None = None
        self._backend: int | None = None
        self._epoch: int | None = None
        self._renew_after = 0.0  # monotonic time when the lease is next renewed
        #: Leader-only writes refused because the epoch was stale (for tests and metrics).
        self.refused = 0

    @property
    def _lease_ms(self) -> str:
        return str(max(1, int(self.lease_s * 1000)))

    @property
    def held(self) -> bool:
        """Whether this holder was leader at its last check."""
        return self._epoch is not None

    @property
    def epoch(self) -> int | None:
        """The epoch this holder leads in, or None."""
        return self._epoch

    def _in_memory(self) -> bool:
        return self.db.engine.dialect.name == "sqlite" and self.db.engine.url.database in (
            None,
            "",
            ":memory:",
        )

    def try_acquire(self, fresh: bool = True) -> bool:
        """Become (or stay) leader if nobody else is; never waits on another holder.

        ``fresh=False``: a contender that saw a live holder less than ``recheck_s``
        ago answers False at once (a loop's gate, asked on every wake-up).
        """
        if self._in_memory():
            self._epoch = self._epoch or 1  # an in-memory database lives in one process only
            return True
        known = self.known(fresh)
        if known is not None:
            return known
        try:
            liveness = self._liveness()
            with self.db.engine.begin() as conn:
                self._epoch = self._claim(conn, liveness)
        except Exception as exc:
            log.warning("leadership %s: check failed (%s); not leading", self.name, exc)
            self._epoch = None
        if self._epoch is not None:
            self._renew_after = time.monotonic() + self.lease_s / 2
        else:
            self._recheck_after = time.monotonic() + self.recheck_s
        return self._epoch is not None

    def known(self, fresh: bool = True) -> bool | None:
        """The answer ``try_acquire`` gives without the database now, or None if it must ask.

        True while a held lease is not due for renewal; with ``fresh=False``, False
        while a contender's last sight of a live holder is under ``recheck_s`` old.
        """
        now = time.monotonic()
        if self._epoch is not None and now < self._renew_after:
            return True
        if not fresh and self._epoch is None and now < self._recheck_after:
            return False
        return None

    def _claim(self, conn: Connection, liveness: str) -> int | None:
        if conn.dialect.name == "postgresql":  # never wait long behind a paused holder's lock
            conn.execute(select(func.set_config("lock_timeout", self._lease_ms, True)))
        now = utcnow()
        expires = now + timedelta(seconds=self.lease_s)
        values = {"holder": self.holder, "liveness": liveness, "expires_at": expires}
        row = conn.execute(select(_LEASE).where(_LEASE.c.name == self.name)).one_or_none()
        if row is None:
            try:
                with conn.begin_nested():
                    conn.execute(insert(_LEASE).values(name=self.name, epoch=1, **values))
            except IntegrityError:
                return None  # another contender created it first
            return 1
        if row.holder == self.holder and row.epoch == self._epoch:
            renewed = conn.execute(
                update(_LEASE)
                .where(_LEASE.c.name == self.name, _LEASE.c.epoch == row.epoch)
                .where(_LEASE.c.holder == self.holder)
                .values(**values)
            )
            return row.epoch if renewed.rowcount == 1 else None
        if row.holder not in (None, self.holder) and not self._vacant(
            conn, row.liveness, row.expires_at, now
        ):
            return None
        taken = conn.execute(
            update(_LEASE)
            .where(_LEASE.c.name == self.name, _LEASE.c.epoch == row.epoch)
            .values(epoch=row.epoch + 1, **values)
        )
        if taken.rowcount != 1:
            return None
        if row.holder is not None:
            log.warning(
                "%s took leadership over from %s (epoch %s)", self.holder, row.holder, row.epoch + 1
            )
        return int(row.epoch) + 1

    def _vacant(
        self, conn: Connection, liveness: str | None, expires: datetime, now: datetime
    ) -> bool:
        """True when the holder's lease ran out or its liveness marker says it is gone."""
        if aware_utc(expires) <= now:
            return True
        kind, _, rest = (liveness or "").partition(":")
        if kind == "pg" and rest.isdigit() and conn.dialect.name == "postgresql":
            alive = conn.exec_driver_sql(
                "SELECT count(*) FROM pg_stat_activity WHERE pid = %(pid)s", {"pid": int(rest)}
            ).scalar()
            return not alive
        host, _, pid = rest.rpartition(":")
        if kind == "pid" and host == socket.gethostname() and pid.isdigit():
            return not _pid_alive(int(pid))
        return False

    def _liveness(self) -> str:
        """This holder's liveness marker; on PostgreSQL a connection held open for it."""
        if self.db.engine.dialect.name != "postgresql":
            return f"pid:{socket.gethostname()}:{os.getpid()}"
        if self._conn is not None:
            try:
                self._conn.exec_driver_sql("SELECT 1")
            except Exception:
                self._drop_connection()
        if self._conn is None:
            conn = self.db.engine.connect().execution_options(isolation_level="AUTOCOMMIT")
            self._backend = int(conn.exec_driver_sql("SELECT pg_backend_pid()").scalar_one())
            self._conn = conn
        return f"pg:{self._backend}"

    def fence(self, session: Session) -> None:
        """Start a leader-only transaction: lock the lease row if this holder's epoch is current.

        Raises ``StaleLeadership`` (and forgets the lease) when another holder
        took over; call it first in the transaction, before any other write.
        """
        if self._in_memory():
            return
        epoch = self._epoch
        matched = 0
        if epoch is not None:
            lock = (
                update(_LEASE)
                .where(_LEASE.c.name == self.name, _LEASE.c.epoch == epoch)
                .where(_LEASE.c.holder == self.holder)
                .values(epoch=epoch)
            )
            if session.get_bind().dialect.name == "postgresql":
                # Paused inside this transaction, the leader would hold the row lock and
                # stall every takeover: PostgreSQL ends the session once it idles past the
                # lease. Set in the statement that takes the lock (one round trip).
                lock = lock.returning(func.set_config(_IDLE, self._lease_ms, True))
                matched = len(session.execute(lock).all())
            else:
                matched = session.execute(lock).rowcount  # type: ignore[attr-defined]
        if matched != 1:
            self._epoch = None
            self.refused += 1
            raise StaleLeadership(
                f"{self.holder} is no longer the leader of {self.name} (epoch {epoch}); "
                "its write was refused"
            )

    def _drop_connection(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(Exception):
                self._conn.invalidate()
            with contextlib.suppress(Exception):
                self._conn.close()
        self._conn = None
        self._backend = None

    def release(self) -> None:
        """Stop being leader (idempotent); another contender can take over at once."""
        epoch, self._epoch = self._epoch, None
        if epoch is not None and not self._in_memory():
            with contextlib.suppress(Exception), self.db.engine.begin() as conn:
                conn.execute(
                    update(_LEASE)
                    .where(_LEASE.c.name == self.name, _LEASE.c.epoch == epoch)
                    .where(_LEASE.c.holder == self.holder)
                    .values(holder=None, liveness=None, expires_at=utcnow())
                )
        self._drop_connection()
