"""``PostgresNotifier``: wake-ups across processes and servers through PostgreSQL ``NOTIFY``.

A hint only: every loop still polls, so a lost notification costs one
interval, never correctness. ``publish`` wakes this process's subscribers at
once and hands the topic to a sender thread, which sends ``pg_notify('aimass',
'<topic> <origin>')`` on its own autocommit connection: outside every write
transaction (it runs after the commit that changed the state) and a few bytes
long, so NOTIFY never serialises the hot writes. Topics published in a burst
are coalesced. A listener thread holds one ``LISTEN aimass`` connection and
calls the local subscribers of each topic another process published.
"""

from __future__ import annotations

import logging
import threading
import uuid

from sqlalchemy.engine import make_url

from aimass.platform.notifier import TOPICS, Callback, LocalNotifier, Topic

log = logging.getLogger("aimass.platform")

CHANNEL = "aimass"


def libpq_url(url: str) -> str:
    """A SQLAlchemy PostgreSQL URL as psycopg takes it (no ``+driver``)."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


class PostgresNotifier:
    """``LocalNotifier`` plus ``NOTIFY``/``LISTEN`` on one channel; ``start()``, ``close()``."""

    def __init__(self, url: str, retry_s: float = 1.0) -> None:
        self.url = libpq_url(url)
        self.retry_s = retry_s
        self.origin = uuid.uuid4().hex[:12]
        self._local = LocalNotifier()
        self._pending: set[Topic] = set()
        self._lock = threading.Lock()
        self._wanted = threading.Event()
        self._stopping = threading.Event()
        self._threads: list[threading.Thread] = []
        #: Notifications received from other processes (for tests and metrics).
        self.received = 0

    def subscribe(self, topic: Topic, callback: Callback) -> None:
        """Call ``callback`` when ``topic`` is published here or in another process."""
        self._local.subscribe(topic, callback)

    def publish(self, topic: Topic) -> None:
        """Wake this process's subscribers now and queue the NOTIFY for the others."""
        self._local.publish(topic)
        with self._lock:
            self._pending.add(topic)
        self._wanted.set()

    def start(self) -> None:
        """Start the sender and listener threads (idempotent)."""
        if self._threads:
            return
        self._stopping.clear()
        for target, name in ((self._send, "aimass-notify"), (self._listen, "aimass-listen")):
            thread = threading.Thread(target=target, name=name, daemon=True)
            thread.start()
            self._threads.append(thread)

    def close(self) -> None:
        """Stop both threads (a pending notify may be dropped: it was a hint)."""
        self._stopping.set()
        self._wanted.set()
        for thread in self._threads:
            thread.join(timeout=5)
        self._threads.clear()

    def _send(self) -> None:
        import psycopg

        conn: psycopg.Connection[tuple[object, ...]] | None = None
        while not self._stopping.is_set():
            self._wanted.wait()
            self._wanted.clear()
            with self._lock:
                topics, self._pending = self._pending, set()
            if self._stopping.is_set():
                break
            try:
                if conn is None or conn.closed:
                    conn = psycopg.connect(self.url, autocommit=True, connect_timeout=5)
                for topic in sorted(topics):
                    conn.execute("SELECT pg_notify(%s, %s)", (CHANNEL, f"{topic} {self.origin}"))
            except Exception as exc:
                log.debug("NOTIFY failed (%s); other servers poll instead", exc)
                if conn is not None:
                    conn.close()
                conn = None
                self._stopping.wait(self.retry_s)
        if conn is not None:
            conn.close()

    def _listen(self) -> None:
        import psycopg

        reconnect = False
        while not self._stopping.is_set():
            try:
                with psycopg.connect(self.url, autocommit=True, connect_timeout=5) as conn:
                    conn.execute(f"LISTEN {CHANNEL}")
                    if reconnect:  # hints missed while disconnected: wake everyone once
                        for topic in TOPICS:
                            self._local.publish(topic)
                    reconnect = True
                    while not self._stopping.is_set():
                        for note in conn.notifies(timeout=0.5):
                            self._deliver(note.payload)
            except Exception as exc:
                log.debug("LISTEN connection lost (%s); retrying", exc)
                self._stopping.wait(self.retry_s)

    def _deliver(self, payload: str) -> None:
        topic, _, origin = payload.partition(" ")
        if origin == self.origin or topic not in TOPICS:
            return  # our own (already delivered locally) or not ours to read
        self.received += 1
        self._local.publish(topic)
