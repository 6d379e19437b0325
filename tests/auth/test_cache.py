"""The bearer-check cache: one look-up per secret and TTL, however many requests miss at once."""

from __future__ import annotations

import asyncio
import threading

import pytest

from aimass.auth.cache import AuthCache
from aimass.entities.auth import Principal
from aimass.errors import Unauthenticated

KNOWN = Principal(token_id=1, name="known", role="viewer")


class TokenStore:
    """A token store of one secret, counting its look-ups; each waits until released."""

    def __init__(self) -> None:
        self.lookups = 0
        self.release = threading.Event()

    def authenticate(self, secret: str | None) -> Principal:
        self.lookups += 1
        self.release.wait(60)
        if secret != "known":
            raise Unauthenticated("invalid token")
        return KNOWN


def test_requests_missing_on_one_secret_at_once_share_one_look_up() -> None:
    store = TokenStore()

    async def scenario() -> tuple[list[object], list[object]]:
        cache = AuthCache(store.authenticate, ttl_s=3600)
        known = [asyncio.ensure_future(cache.principal("known")) for _ in range(64)]
        bad = [asyncio.ensure_future(cache.principal("bad")) for _ in range(64)]
        await asyncio.sleep(0.05)  # every request is waiting on the two look-ups
        store.release.set()
        return (
            await asyncio.gather(*known, return_exceptions=True),
            await asyncio.gather(*bad, return_exceptions=True),
        )

    known, bad = asyncio.run(scenario())

    assert known == [KNOWN] * 64
    assert all(isinstance(e, Unauthenticated) and e.message == "invalid token" for e in bad)
    assert store.lookups == 2


def test_a_request_that_goes_away_does_not_cancel_the_others_check() -> None:
    store = TokenStore()

    async def scenario() -> Principal:
        cache = AuthCache(store.authenticate, ttl_s=3600)
        first = asyncio.ensure_future(cache.principal("known"))
        second = asyncio.ensure_future(cache.principal("known"))
        await asyncio.sleep(0.05)
        first.cancel()  # its client hung up while the check was under way
        store.release.set()
        with pytest.raises(asyncio.CancelledError):
            await first
        return await second

    assert asyncio.run(scenario()) == KNOWN
    assert store.lookups == 1


def test_cached_answers_only_from_a_fresh_accepting_check() -> None:
    """``cached`` (the inference path's no-wait look-up) never checks and never refuses: a
    secret not checked yet, refused, or whose check expired reads None."""
    store = TokenStore()
    store.release.set()

    async def scenario() -> tuple[object, ...]:
        cache = AuthCache(store.authenticate, ttl_s=0.2)
        before = cache.cached("known")
        await cache.principal("known")
        with pytest.raises(Unauthenticated):
            await cache.principal("bad")
        fresh, refused = cache.cached("known"), cache.cached("bad")
        await asyncio.sleep(0.3)
        return before, fresh, refused, cache.cached("known")

    before, fresh, refused, expired = asyncio.run(scenario())

    assert (before, fresh, refused, expired) == (None, KNOWN, None, None)
    assert store.lookups == 2  # ``cached`` looked nothing up
