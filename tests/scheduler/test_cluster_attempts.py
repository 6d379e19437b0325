"""Attempts that an executor hands to a cluster: queued there first, then on a named node.

``ClusterQueue`` is a real, simple executor of that kind (the Ray executor's
contract without Ray): it accepts attempts, holds them as waiting until the test
"starts" one on a node, and reports their ends.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from aimass.executors.base import AttemptExit, AttemptSpec, Executor
from aimass.jobs import service
from aimass.jobs.entities import JobCreate
from aimass.scheduler.placement import NodeCapacity
from aimass.scheduler.scheduler import Scheduler
from aimass.store.db import Database
from aimass.store.orm import utcnow

LEASE_S = 30.0


class ClusterQueue(Executor):
    """Attempts wait until ``start`` puts them on a node; ``end`` reports their exit."""

    def __init__(self) -> None:
        super().__init__()
        self.attempts: dict[tuple[int, int], str | None] = {}

    def submit(self, attempt: AttemptSpec) -> None:
        """Queue the attempt; no process, so no heartbeat, until it starts."""
        self.attempts[(attempt.job_id, attempt.attempt)] = None

    def cancel(self, job_id: int) -> None:
        """Not needed here."""

    def close(self) -> None:
        """Nothing to free."""

    def active(self) -> list[tuple[int, int]]:
        """Every attempt held, waiting or started."""
        return list(self.attempts)

    def waiting(self) -> list[tuple[int, int]]:
        """The attempts no node has started yet."""
        return [key for key, node in self.attempts.items() if node is None]

    def start(self, key: tuple[int, int], node: str) -> None:
        self.attempts[key] = node
        self._placed(*key, node)

    def end(self, key: tuple[int, int], returncode: int) -> None:
        del self.attempts[key]
        self._report(AttemptExit(job_id=key[0], attempt=key[1], returncode=returncode))


@pytest.fixture
def executor() -> ClusterQueue:
    return ClusterQueue()


@pytest.fixture
def scheduler(db: Database, tmp_path: Path, executor: ClusterQueue) -> Iterator[Scheduler]:
    scheduler = Scheduler(
        db,
        executor,
        NodeCapacity(cpu=4),
        scratch_root=tmp_path / "scratch",
        lease_s=LEASE_S,
        heartbeat_children=False,  # as a server runs it: each job's runtime sends heartbeats
    )
    yield scheduler
    scheduler.leadership.release()


def _submit(db: Database) -> int:
    with db.session() as s:
        return service.submit_job(
            s, "default", JobCreate(kind="train", entry="noop"), {"noop": None}
        ).id


def _lease_left(db: Database, job_id: int) -> float:
    with db.session() as s:
        expires = service.read_job(s, job_id).lease_expires_at
    assert expires is not None
    return (expires - utcnow()).total_seconds()


def _expire_soon(db: Database, job_id: int) -> None:
    """Bring the lease near its end, as if time had passed with no heartbeat."""
    with db.session() as s:
        job = service.read_job(s, job_id)
        service.renew_lease(s, job_id, job.attempt, 5.0, utcnow())


def test_an_attempt_queued_in_the_cluster_keeps_its_lease(
    db: Database, executor: ClusterQueue, scheduler: Scheduler
) -> None:
    job_id = _submit(db)
    assert scheduler.tick().started == [job_id]
    _expire_soon(db, job_id)
    scheduler.keep_local()  # no runtime heartbeats for it yet: its server renews it
    assert _lease_left(db, job_id) > LEASE_S - 5

    executor.start((job_id, 1), "ray:abc@10.0.0.7 (node-a)")
    _expire_soon(db, job_id)
    scheduler.keep_local()  # started: its own runtime's heartbeats keep it from now on
    assert _lease_left(db, job_id) < 6


def test_the_node_an_attempt_lands_on_is_recorded_with_a_fresh_lease(
    db: Database, executor: ClusterQueue, scheduler: Scheduler
) -> None:
    job_id = _submit(db)
    scheduler.tick()
    _expire_soon(db, job_id)
    executor.start((job_id, 1), "ray:abc@10.0.0.7 (node-a)")
    with db.session() as s:
        job = service.read_job(s, job_id)
    assert job.node == "ray:abc@10.0.0.7 (node-a)"
    assert job.lease_expires_at is not None
    assert job.lease_expires_at - utcnow() > timedelta(seconds=LEASE_S - 5)

    executor.end((job_id, 1), 0)
    with db.session() as s:
        job = service.read_job(s, job_id)
        events = service.list_job_events(s, job_id)
    assert job.state == "succeeded" and job.node is None
    assert "attempt 1 runs on ray:abc@10.0.0.7 (node-a)" in [e.reason for e in events]


def test_a_late_placement_report_changes_nothing(
    db: Database, executor: ClusterQueue, scheduler: Scheduler
) -> None:
    job_id = _submit(db)
    scheduler.tick()
    executor.end((job_id, 1), 0)
    scheduler.handle_placed(job_id, 1, "ray:abc@10.0.0.7")  # its task said so too late
    with db.session() as s:
        assert service.read_job(s, job_id).node is None
        reasons = [e.reason or "" for e in service.list_job_events(s, job_id)]
    assert not any("runs on" in r for r in reasons)
