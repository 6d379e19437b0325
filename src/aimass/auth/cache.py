"""A short-lived cache of bearer-token checks, so auth on the inference path costs microseconds."""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from aimass.errors import Unauthenticated, Unavailable

if TYPE_CHECKING:
    from aimass.auth.entities import Principal

#: How many distinct secrets the cache holds before it starts over.
MAX_ENTRIES = 10_000
#: A cached check: (check expires, principal or None, refusal, grace ends).
_Entry = tuple[float, "Principal | None", str, float]


class AuthCache:
    """Principals (and refusals) by the sha256 of the secret, each kept for ``ttl_s`` seconds.

    A revoked token stops working at once in the process that revoked it (the
    revoke route calls ``clear`` through ``Platform.auth_cache``) and
    within ``ttl_s`` in every other process. Refusals are cached too, so
    that a flood of bad tokens costs the token store one look-up per token and
    TTL, not one per request. A miss calls ``authenticate`` on a worker thread,
    since it may query the database; the requests that miss on the same secret
    meanwhile wait for that one check (at 64 clients an expiry otherwise sent 64
    look-ups to the database every TTL).

    While the database is unreachable (``authenticate`` raises ``Unavailable``), a
    check that expired less than ``grace_s`` seconds ago still answers, so
    inference on tokens already verified goes on through a database restart;
    tokens not seen in that window get the ``Unavailable`` (503).
    """

    def __init__(
        self,
        authenticate: Callable[[str | None], Principal],
        ttl_s: float = 2.0,
        grace_s: float = 0.0,
    ) -> None:
        self._authenticate = authenticate
        self.ttl_s = ttl_s
        self.grace_s = grace_s
        #: key -> (check expires, principal or None, refusal, grace ends).
        self._entries: dict[bytes, _Entry] = {}
        #: key -> the check under way for it, which the other misses on that key await.
        self._refreshing: dict[bytes, asyncio.Task[_Entry]] = {}

    async def principal(self, secret: str) -> Principal:
        """The principal behind ``secret``; else ``Unauthenticated`` (or ``Unavailable``)."""
        key = hashlib.sha256(secret.encode()).digest()
        entry = self._entries.get(key)
        if entry is None or entry[0] < time.monotonic():
            refresh = self._refreshing.get(key)
            if refresh is None:
                refresh = asyncio.ensure_future(self._refresh(key, secret, entry))
                self._refreshing[key] = refresh
                refresh.add_done_callback(lambda done: self._done(key, done))
            # Shielded: a caller that goes away does not cancel the others' check.
            entry = await asyncio.shield(refresh)
        principal = entry[1]
        if principal is None:
            raise Unauthenticated(entry[2])
        return principal

    def cached(self, secret: str) -> Principal | None:
        """The principal behind ``secret`` if a check still fresh accepted it; else None
        (not checked, expired, or refused: ``principal`` then checks, waits or refuses)."""
        entry = self._entries.get(hashlib.sha256(secret.encode()).digest())
        if entry is None or entry[0] < time.monotonic():
            return None
        return entry[1]

    async def _refresh(self, key: bytes, secret: str, entry: _Entry | None) -> _Entry:
        now = time.monotonic()
        try:
            fresh = await self._check(secret, now)
        except Unavailable:
            if entry is None or now > entry[3]:
                raise
            # Kept until its grace ends (counted from the last real check), and asked
            # again only once a TTL, so an outage does not cost a try per request.
            fresh = (now + self.ttl_s, entry[1], entry[2], entry[3])
        if len(self._entries) >= MAX_ENTRIES:
            self._entries.clear()
        self._entries[key] = fresh
        return fresh

    def _done(self, key: bytes, refresh: asyncio.Task[_Entry]) -> None:
        if self._refreshing.get(key) is refresh:
            del self._refreshing[key]
        if not refresh.cancelled():
            refresh.exception()  # read, so a failure nobody awaited any more is not logged

    async def _check(self, secret: str, now: float) -> _Entry:
        loop = asyncio.get_running_loop()
        expires = now + self.ttl_s
        try:
            principal = await loop.run_in_executor(None, self._authenticate, secret)
        except Unauthenticated as exc:
            return expires, None, exc.message, expires + self.grace_s
        return expires, principal, "", expires + self.grace_s

    def clear(self) -> None:
        """Forget every cached check (a token was revoked and must stop working now)."""
        self._entries.clear()
