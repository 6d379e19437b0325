"""Leadership: one holder at a time, on both backends."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from sqlalchemy.orm import Session

from aimass.artifacts.store import ArtifactStore
from aimass.errors import StaleLeadership
from aimass.executors.local import LocalExecutor
from aimass.jobs import service
from aimass.jobs.entities import JobCreate
from aimass.scheduler.leader import Leadership
from aimass.scheduler.placement import NodeCapacity
from aimass.scheduler.scheduler import Scheduler
from aimass.store.db import Database
from aimass.store.references import OrphanSweeper

TARGETS = Path(__file__).parents[1] / "executors"


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


def test_a_followers_gate_does_not_query_the_lease_on_every_wake_up(db_url: str) -> None:
    """A loop's gate (``fresh=False``) reuses a contender's recent answer; competing does not."""
    from sqlalchemy import event

    leader_db, follower_db = Database(db_url), Database(db_url)
    leader, follower = Leadership(leader_db), Leadership(follower_db, recheck_s=0.5)
    statements: list[str] = []
    event.listen(follower_db.engine, "before_cursor_execute", lambda *a: statements.append(a[2]))
    try:
        assert leader.try_acquire()
        assert not follower.try_acquire(fresh=False)
        asked = len(statements)
        assert asked > 0, "the first check asks the database"
        for _ in range(50):  # wake-ups in a burst of submissions
            assert not follower.try_acquire(fresh=False)
        assert len(statements) == asked, "a gate within recheck_s asked the database again"
        leader.release()
        assert follower.known(fresh=False) is False  # the gate's answer is still the old one
        assert follower.try_acquire(), "competing (fresh) takes over at once"
        assert follower.known(fresh=False) is True
    finally:
        follower.release()
        leader.release()
        leader_db.close()
        follower_db.close()


def test_a_gates_answer_expires_after_recheck_s(db_url: str) -> None:
    leader_db, follower_db = Database(db_url), Database(db_url)
    leader, follower = Leadership(leader_db), Leadership(follower_db, recheck_s=0.2)
    try:
        assert leader.try_acquire()
        assert not follower.try_acquire(fresh=False)
        leader.release()
        assert not follower.try_acquire(fresh=False)  # within recheck_s: the old answer
        time.sleep(0.25)
        assert follower.try_acquire(fresh=False), "after recheck_s the gate asks again"
    finally:
        follower.release()
        leader.release()
        leader_db.close()
        follower_db.close()


class _Paused(Leadership):
    """A leader that checked its lease, then was paused: it still believes it leads."""

    def try_acquire(self) -> bool:
        return self.held or super().try_acquire()


def _queued(db: Database) -> int:
    spec = JobCreate.model_validate({"kind": "train", "entry": "noop"})
    with db.session() as s:
        return service.submit_job(s, "default", spec, {"noop": None}).id


def test_a_superseded_leaders_writes_are_refused_and_change_nothing(
    db: Database, tmp_path: Path
) -> None:
    """Lease expiry hands leadership over with a higher epoch; the old one's fence refuses."""
    stale, fresh = _Paused(db, lease_s=0.5), Leadership(db, lease_s=0.5)
    executor = LocalExecutor({"noop": "job_targets:noop"}, gpus=[], python_path=[TARGETS])
    scheduler = Scheduler(
        db, executor, NodeCapacity(cpu=2), scratch_root=tmp_path, leadership=stale
    )
    try:
        assert stale.try_acquire() and stale.epoch is not None
        first_epoch = stale.epoch
        assert not fresh.try_acquire(), "the holder is alive and its lease runs"
        time.sleep(0.6)  # the stale holder is "paused" past its lease
        assert fresh.try_acquire()
        assert fresh.epoch == first_epoch + 1
        job_id = _queued(db)
        report = scheduler.place()  # the paused leader wakes and places as it planned
        assert not report.leader and report.started == []
        assert stale.refused == 1 and not stale.held
        with db.session() as s:
            job = service.read_job(s, job_id)
        assert (job.state, job.attempt, job.node) == ("queued", 0, None)
        with pytest.raises(StaleLeadership), db.session() as s:
            stale.fence(s)  # no write as leader until it wins a new epoch
        with db.session() as s:
            fresh.fence(s)  # the current leader's transactions go through
    finally:
        stale.release()
        fresh.release()
        executor.close()


@pytest.mark.backend("postgresql")
def test_a_holder_whose_database_session_died_is_replaced_at_once(db: Database) -> None:
    """A killed leader's PostgreSQL backend disappears: no need to wait for its lease."""
    first, second = Leadership(db, lease_s=60), Leadership(db, lease_s=60)
    try:
        assert first.try_acquire()
        assert not second.try_acquire()
        with db.engine.connect() as conn:
            conn.exec_driver_sql(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE pid = %(pid)s",
                {"pid": first._backend},
            )
        deadline = time.monotonic() + 5
        while not second.try_acquire():
            assert time.monotonic() < deadline
            time.sleep(0.05)
        assert second.epoch == 2
    finally:
        first.release()
        second.release()


@pytest.mark.backend("postgresql")
def test_a_leader_paused_inside_its_transaction_does_not_block_the_takeover(
    db: Database,
) -> None:
    """Its row lock ends with its session, which PostgreSQL closes once idle past the lease."""
    stale, fresh = Leadership(db, lease_s=0.5), Leadership(db, lease_s=0.5)
    try:
        assert stale.try_acquire()
        session = Session(db.engine)  # a leader-only transaction, left open: the "pause"
        stale.fence(session)
        time.sleep(0.6)  # its lease runs out while it holds the row lock
        deadline = time.monotonic() + 10
        while not fresh.try_acquire():  # each try waits at most the lease for the lock
            assert time.monotonic() < deadline, "the takeover stayed blocked"
        assert fresh.epoch == 2
        with pytest.raises(Exception):  # noqa: B017 (the killed session's error, driver-specific)
            session.commit()
        session.close()
    finally:
        stale.release()
        fresh.release()


def test_a_superseded_leaders_orphan_sweep_deletes_nothing(db: Database, tmp_path: Path) -> None:
    """The sweep deletes each file inside a fenced transaction: a paused old leader deletes none."""
    store = ArtifactStore(str(tmp_path / "artifacts"))
    orphan = store.put("models/gone/1/m.onnx", [b"complete"]).key
    stalled = store.put("tmp/stalled", [b"part"]).key
    stale, fresh = _Paused(db, lease_s=0.5), Leadership(db, lease_s=0.5)
    try:
        assert stale.try_acquire()
        deadline = time.monotonic() + 10
        while not fresh.try_acquire():  # the stale holder is "paused" past its lease
            assert time.monotonic() < deadline, "no takeover"
        # min_age_s=0: both files count as abandoned at once.
        old = OrphanSweeper(db, store, interval=60, min_age_s=0, fence=stale)
        assert old.sweep() == [] and old.refused == 1
        assert store.exists(orphan) and store.exists(stalled)
        new = OrphanSweeper(db, store, interval=60, min_age_s=0, fence=fresh)
        assert sorted(new.sweep()) == sorted([orphan, stalled])
        assert not store.exists(orphan) and not store.exists(stalled)
    finally:
        stale.release()
        fresh.release()
