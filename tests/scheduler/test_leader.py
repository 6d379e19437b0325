"""Leadership: one holder at a time, on both backends."""

from __future__ import annotations

from aimass.scheduler.leader import Leadership
from aimass.store.db import Database


def test_only_one_contender_leads_until_it_releases(db_url: str) -> None:
    first_db, second_db = Database(db_url), Database(db_url)
    first, second = Leadership(first_db), Leadership(second_db)
    try:
        assert first.try_acquire()
        assert first.try_acquire()  # staying leader is idempotent
        assert not second.try_acquire()
        assert not second.held
        first.release()
        assert second.try_acquire()
        assert not first.try_acquire()
        second.release()
        assert first.try_acquire()
    finally:
        first.release()
        second.release()
        first_db.close()
        second_db.close()


def test_separate_names_do_not_contend(db_url: str) -> None:
    db = Database(db_url)
    a, b = Leadership(db, "one"), Leadership(db, "two")
    try:
        assert a.try_acquire() and b.try_acquire()
    finally:
        a.release()
        b.release()
        db.close()
