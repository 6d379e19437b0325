"""``Scheduler`` and ``Placement``: the loops that turn the queue in the database into attempts.

Two halves. ``Scheduler.keep_local`` is what every server process does for the
attempts its own executor runs: it keeps their leases alive (so a change of
leader does not requeue work that is still running), stops those asked to
cancel, and records their exits. ``Scheduler.place`` is what only the leader
(``Leadership``) does: expire leases, enforce timeouts, place queued jobs and
start their attempts. A platform runs them as two loops, the ``Scheduler``
("every" process) and its ``Placement`` ("leader" only); used on its own, the
``Scheduler`` loop runs both halves. The loops are event-driven: ``wake()`` on
a submission, and the executor's exit callback wakes placement when an attempt
ends; a slow interval is only the fallback. Deadlines (a timeout, a lease, a
retry backoff) that fall before the next interval wake placement on time.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import NamedTuple

from pydantic import JsonValue
from sqlalchemy.orm import Session

from aimass.auth.service import create_job_token
from aimass.errors import AimassError, DatabaseUnavailable
from aimass.executors.base import EXIT_INFRA, AttemptExit, AttemptSpec, Executor
from aimass.job_environment import JobEnvironment
from aimass.jobs import records, service
from aimass.jobs.entities import Job, JobCheckpoint
from aimass.jobs.log_chunks import drop_chunks
from aimass.jobs.queue import (
    QueuedJob,
    RunningJob,
    cancels_requested,
    queue_head,
    running_attempts,
)
from aimass.loop_service import LoopService
from aimass.runtime.heartbeat import EXIT_SUPERSEDED
from aimass.scheduler.leader import Leadership, StaleLeadership
from aimass.scheduler.placement import NodeCapacity, place
from aimass.store.db import Database
from aimass.store.orm import utcnow

log = logging.getLogger("aimass.scheduler")


def local_capacity(gpus: int = 0) -> NodeCapacity:
    """This node: the CPUs this process may use, its GPUs, its physical memory."""
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // (1024 * 1024)
    return NodeCapacity(cpu=float(len(os.sched_getaffinity(0))), gpu=gpus, memory_mb=int(memory))


def node_name() -> str:
    """This process as a node: host and pid."""
    return f"{socket.gethostname()}:{os.getpid()}"


def _process_gone(node: str | None) -> bool:
    """True when ``node`` names a process on this host that no longer exists."""
    if not node:
        return False
    host, _, pid = node.rpartition(":")
    if host != socket.gethostname() or not pid.isdigit():
        return False
    if int(pid) == os.getpid():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


@dataclass
class TickReport:
    """What one tick did (for tests and the benchmark)."""

    leader: bool = False
    started: list[int] = field(default_factory=list)
    ended: list[int] = field(default_factory=list)
    waiting: dict[int, str] = field(default_factory=dict)
    next_deadline: datetime | None = None


def _exit_outcome(exit_: AttemptExit) -> tuple[bool, str, bool]:
    """(succeeded, reason, infra) for an attempt's end."""
    if exit_.returncode == 0 and not exit_.cancelled:
        return True, "", False
    if exit_.cancelled:
        return False, "the attempt was stopped by its executor", True
    if exit_.returncode < 0:
        try:
            name = signal.Signals(-exit_.returncode).name
        except ValueError:
            name = f"signal {-exit_.returncode}"
        detail = f" ({exit_.error})" if exit_.error else ""  # a Ray node that died, say
        return False, f"the attempt's process was killed by {name}{detail}", True
    if exit_.returncode == EXIT_SUPERSEDED:  # its lease ran out: not the job's own failure
        return False, exit_.error or "the attempt stopped: its lease ran out", True
    reason = exit_.error or f"the attempt exited with status {exit_.returncode}"
    return False, reason, exit_.returncode == EXIT_INFRA


class _PendingExit(NamedTuple):
    """An attempt's end, waiting for the database (``Scheduler._finish``'s arguments)."""

    job_id: int
    attempt: int
    succeeded: bool
    reason: str
    infra: bool
    outputs: dict[str, JsonValue] | None
    drop_log_chunks: bool = False


class _EventLoopService(LoopService):
    """A loop that may be woken from other threads and at a deadline."""

    def __init__(self, interval: float) -> None:
        super().__init__(interval)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._deadline_timer: asyncio.TimerHandle | None = None

    def start(self) -> None:
        """Start the loop on the running event loop."""
        self._loop = asyncio.get_running_loop()
        super().start()

    async def stop(self, timeout: float = 10.0) -> None:
        """Stop the loop and its deadline timer."""
        await super().stop(timeout)
        if self._deadline_timer is not None:
            self._deadline_timer.cancel()

    def wake_threadsafe(self) -> None:
        """``wake()`` from any thread (the executor's callback runs on its own)."""
        loop = self._loop
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(self.wake)

    def _wake_at(self, deadline: datetime | None) -> None:
        """Wake at ``deadline`` when it falls before the next interval."""
        if deadline is None or self._loop is None:
            return
        delay = (deadline - utcnow()).total_seconds()
        if delay < self.interval:
            if self._deadline_timer is not None:
                self._deadline_timer.cancel()
            self._deadline_timer = self._loop.call_later(max(delay, 0.0) + 0.01, self.wake)


class Scheduler(_EventLoopService):
    """Places queued jobs on ``executor`` within ``capacity``; one leader acts at a time.

    ``lease_s`` is how long an attempt may go without a heartbeat before it is
    requeued. While ``heartbeat_children`` is on, the scheduler renews the
    leases of attempts its executor reports alive (until the job runtime sends
    its own heartbeats over HTTP). Each tick reads the first ``queue_scan``
    queued jobs in scheduling order; jobs further back keep their last reason.
    """

    name = "scheduler"

    def __init__(
        self,
        db: Database,
        executor: Executor,
        capacity: NodeCapacity,
        *,
        scratch_root: Path,
        lease_s: float = 30.0,
        interval: float = 5.0,
        project_limits: Mapping[str, int] | None = None,
        default_project_limit: int | None = None,
        leadership: Leadership | None = None,
        heartbeat_children: bool = True,
        env: Mapping[str, str] | None = None,
        node: str | None = None,
        queue_scan: int = 64,
        server_url: str | None = None,
        on_attempt_end: Callable[[int, int], object] | None = None,
    ) -> None:
        # ``on_attempt_end(job_id, attempt)`` runs before an attempt's end is recorded (it
        # archives the log); once it returns, the attempt's shipped log chunks are dropped
        # in the transaction that records the end.
        super().__init__(interval)
        self.db = db
        self.executor = executor
        self.capacity = capacity
        self.scratch_root = scratch_root
        self.lease_s = lease_s
        self.project_limits = dict(project_limits or {})
        self.default_project_limit = default_project_limit
        self.leadership = leadership or Leadership(db)
        self.heartbeat_children = heartbeat_children
        self.env = dict(env or {})
        self.node = node or node_name()
        self.queue_scan = queue_scan
        self.server_url = server_url
        self.on_attempt_end = on_attempt_end
        #: Exits not yet recorded because the database was unreachable; retried each tick.
        self._pending_exits: list[_PendingExit] = []
        self._pending_lock = threading.Lock()
        #: The leader-only loop that places jobs, once one is made (``Placement(scheduler)``).
        self.placement: Placement | None = None
        executor.on_exit = self.handle_exit
        executor.on_placed = self.handle_placed

    # -- the loop -----------------------------------------------------------

    async def stop(self, timeout: float = 10.0) -> None:
        """Stop the loop and give up leadership (the executor is its owner's to close)."""
        await super().stop(timeout)
        await asyncio.to_thread(self.leadership.release)

    async def run_once(self) -> None:
        """This process's half; both halves while no ``Placement`` loop runs the leader's."""
        if self.placement is not None:
            await asyncio.to_thread(self.keep_local)
            return
        report = await asyncio.to_thread(self.tick)
        self._wake_at(report.next_deadline)

    def _wake_placement(self) -> None:
        (self.placement or self).wake_threadsafe()

    # -- one tick -----------------------------------------------------------

    def tick(self) -> TickReport:
        """Both halves: this process's attempts, then (as leader) placement."""
        self.keep_local()
        return self.place()

    def keep_local(self) -> None:
        """Every process: record exits the database missed, renew leases, stop cancelled."""
        self.record_pending_exits()
        local = dict(self.executor.active())
        if not local:
            return
        if self.heartbeat_children:
            self._renew(local, utcnow())
        elif waiting := dict(self.executor.waiting()):
            self._renew(waiting, utcnow())  # queued in Ray: no runtime to heartbeat yet
        with self.db.session() as session:
            to_cancel = cancels_requested(session, list(local))
        for job_id in to_cancel:
            self.executor.cancel(job_id)

    def place(self) -> TickReport:
        """The leader only: end overdue attempts, place queued jobs and start what fits."""
        report = TickReport()
        now = utcnow()
        if not self.leadership.try_acquire():
            return report
        report.leader = True
        local = dict(self.executor.active())
        timed_out: list[int] = []
        starts: list[tuple[Job, JobCheckpoint | None, str | None]] = []
        try:
            with self.db.session() as session:
                self.leadership.fence(session)  # a paused, superseded leader writes nothing
                self._place_in(session, report, now, local, timed_out, starts)
        except StaleLeadership as exc:
            log.warning("%s", exc.message)
            report.leader = False
            return report
        for job_id in timed_out:
            self.executor.cancel(job_id)
        for job, checkpoint, secret in starts:
            self._submit(job, checkpoint, secret)
            report.started.append(job.id)
        return report

    def _place_in(
        self,
        session: Session,
        report: TickReport,
        now: datetime,
        local: Mapping[int, int],
        timed_out: list[int],
        starts: list[tuple[Job, JobCheckpoint | None, str | None]],
    ) -> None:
        """Placement's writes, inside the fenced transaction of ``place``."""
        # An attempt that lost its lease is not killed from here: it may be on a node
        # this server cannot reach, and it stops itself when its heartbeat is refused.
        # One read of the running attempts serves leases, timeouts, lost processes and
        # placement; it is read again only when one of those ended an attempt.
        running = running_attempts(session)
        leases = [(j.id, j.attempt, j.lease_expires_at) for j in running]
        report.ended = service.expire_leases(session, now, leases)
        deadlines = [
            (j.id, j.attempt, j.started_at, j.timeout_s) for j in running if j.timeout_s is not None
        ]
        timed_out.extend(service.enforce_timeouts(session, now, deadlines))
        report.ended += timed_out
        lost = [(j.id, j.attempt) for j in running if j.id not in local and _process_gone(j.node)]
        if lost:
            report.ended += service.abandon_attempts(
                session, lost, "its server process on this node is gone", now
            )
        if report.ended:
            running = running_attempts(session)
        queue = queue_head(session, self.queue_scan)
        plan = place(
            self.capacity,
            running,
            queue,
            now,
            self.project_limits,
            self.default_project_limit,
        )
        down = self.executor.unavailable()
        if down is not None:  # its cluster is unreachable: every queued job waits for it
            plan.start.clear()
            plan.waiting = {j.id: f"waiting: {down}" for j in queue}
        # One UPDATE for every job that starts (those cancelled meanwhile are skipped).
        queued = {j.id: j for j in plan.start}
        for started in service.start_attempts(session, list(queued), self.node, self.lease_s, now):
            secret = None
            if self.server_url is not None:
                job = queued[started.id]
                secret = create_job_token(
                    session, job.id, started.attempt, job.project, job.project_id
                )
            # A first attempt has no predecessor whose checkpoint it could resume from.
            checkpoint = (
                records.latest_checkpoint(session, started.id) if started.attempt > 1 else None
            )
            starts.append((started, checkpoint, secret))
        reasons = {j.id: j.reason for j in queue}
        service.set_waiting_reasons(
            session, {i: r for i, r in plan.waiting.items() if reasons.get(i) != r}
        )
        report.waiting = plan.waiting
        report.next_deadline = self._next_deadline(running, queue, [j for j, _, _ in starts])

    def _renew(self, local: Mapping[int, int], now: datetime) -> None:
        with self.db.session() as session:
            for job_id, attempt in local.items():
                try:
                    job = service.read_job(session, job_id)
                    expires = job.lease_expires_at
                    if (
                        job.attempt == attempt
                        and job.state == "running"
                        and (expires is None or (expires - now).total_seconds() < self.lease_s / 2)
                    ):
                        service.renew_lease(session, job_id, attempt, self.lease_s, now)
                except AimassError:
                    continue

    def _next_deadline(
        self, running: list[RunningJob], queue: list[QueuedJob], started: list[Job]
    ) -> datetime | None:
        moments: list[datetime] = []
        jobs: list[RunningJob | Job] = [*running, *started]
        for job in jobs:
            if job.lease_expires_at is not None:
                moments.append(job.lease_expires_at)
            if job.timeout_s is not None and job.started_at is not None:
                moments.append(job.started_at + timedelta(seconds=job.timeout_s))
        moments.extend(j.next_attempt_at for j in queue if j.next_attempt_at is not None)
        return min(moments) if moments else None

    def _submit(self, job: Job, checkpoint: JobCheckpoint | None, secret: str | None) -> None:
        env = dict(self.env)
        env.update(
            JobEnvironment.partial(
                entry=job.entry,
                kind=job.kind,
                dataset=job.dataset,
                dataset_version=job.dataset_version if job.dataset is not None else None,
            )
        )
        if self.server_url is not None and secret is not None:
            env.update(
                JobEnvironment.partial(
                    url=self.server_url, token=secret, heartbeat_s=round(self.lease_s / 3, 3)
                )
            )
        spec = AttemptSpec(
            job_id=job.id,
            attempt=job.attempt,
            project=job.project,
            entry="script" if job.kind == "script" else job.entry,
            params=job.params,
            resources=job.resources,
            scratch_dir=self.scratch_root / f"job-{job.id}-attempt-{job.attempt}",
            env=env,
            checkpoint=checkpoint,
        )
        try:
            self.executor.submit(spec)
        except Exception as exc:
            log.warning("job %s attempt %s did not start: %s", job.id, job.attempt, exc)
            self._finish(job.id, job.attempt, False, f"could not start: {exc}", True, None)
            return
        # The lease counted from placement, but the attempt's process exists only now (the
        # executor may have waited for its pre-imported zygote on a loaded machine): give it
        # a whole lease to send its first heartbeat, or a slow start reads as a lost attempt.
        # A start within a quarter of the lease needs none (its first heartbeat comes a third
        # of a lease after it starts), which spares a transaction per job.
        now = utcnow()
        if job.started_at is None or (now - job.started_at).total_seconds() > self.lease_s / 4:
            with contextlib.suppress(AimassError), self.db.session() as session:
                service.extend_lease(session, job.id, job.attempt, self.lease_s, now)

    # -- attempts ending --------------------------------------------------------

    def handle_exit(self, exit_: AttemptExit) -> None:
        """The executor's callback: record how the attempt ended, then wake the loop."""
        succeeded, reason, infra = _exit_outcome(exit_)
        archived = False
        try:
            if self.on_attempt_end is not None:
                try:
                    self.on_attempt_end(exit_.job_id, exit_.attempt)
                    archived = True
                except Exception:
                    log.exception("job %s attempt %s: end hook failed", exit_.job_id, exit_.attempt)
            self._finish(
                exit_.job_id, exit_.attempt, succeeded, reason, infra, exit_.outputs, archived
            )
        finally:
            self._wake_placement()  # its resources are free

    def handle_placed(self, job_id: int, attempt: int, node: str) -> None:
        """The executor's callback: the attempt runs on ``node`` (a Ray node); record it."""
        try:
            with self.db.session() as session:
                if service.record_node(session, job_id, attempt, node):
                    # Its process starts only now: a whole lease for its first heartbeat.
                    service.renew_lease(session, job_id, attempt, self.lease_s)
        except AimassError as exc:  # ended meanwhile, or the database is away: only a label
            log.debug("job %s attempt %s on %s: %s", job_id, attempt, node, exc.message)

    @property
    def pending_exits(self) -> int:
        """How many ended attempts wait for the database to be recorded."""
        with self._pending_lock:
            return len(self._pending_exits)

    def record_pending_exits(self) -> int:
        """Record the exits that came while the database was down; how many are left."""
        with self._pending_lock:
            pending, self._pending_exits = self._pending_exits, []
        for exit_ in pending:
            self._finish(*exit_)
        with self._pending_lock:
            return len(self._pending_exits)

    def _finish(
        self,
        job_id: int,
        attempt: int,
        succeeded: bool,
        reason: str,
        infra: bool,
        outputs: dict[str, JsonValue] | None,
        drop_log_chunks: bool = False,
    ) -> None:
        """Record an attempt's end; kept for the next tick while the database is unreachable.

        Never dropped: a lost exit would leave the job ``running`` with no process until
        its lease ran out, and then count it as an infrastructure failure.
        ``drop_log_chunks`` (its log is archived) forgets the attempt's shipped log
        chunks in the same transaction, so readers see the job end and its chunks go at once.
        """
        try:
            with self.db.session() as session:
                service.end_attempt(
                    session,
                    job_id,
                    attempt,
                    "succeeded" if succeeded else "failed",
                    reason=reason or None,
                    infra=infra,
                    outputs=outputs,
                )
                if drop_log_chunks:
                    drop_chunks(session, job_id, attempt)
        except DatabaseUnavailable:
            log.warning("job %s attempt %s ended while the database is unreachable; "
                        "recording it once it is back", job_id, attempt)  # fmt: skip
            with self._pending_lock:
                self._pending_exits.append(
                    _PendingExit(
                        job_id, attempt, succeeded, reason, infra, outputs, drop_log_chunks
                    )
                )
        except AimassError as exc:
            # Already ended elsewhere (timeout, lost lease, the runtime reported first).
            log.debug("job %s attempt %s: %s", job_id, attempt, exc.message)
            if drop_log_chunks:
                with contextlib.suppress(AimassError), self.db.session() as session:
                    drop_chunks(session, job_id, attempt)


class Placement(_EventLoopService):
    """The leader-only loop: ``scheduler.place()`` on each tick (register it as "leader").

    Made from its ``Scheduler``, which from then on runs only this process's half.
    """

    name = "placement"

    def __init__(self, scheduler: Scheduler, interval: float | None = None) -> None:
        super().__init__(scheduler.interval if interval is None else interval)
        self.scheduler = scheduler
        scheduler.placement = self

    async def run_once(self) -> None:
        """Place in a worker thread, then a wake-up at the next deadline if it is close."""
        report = await asyncio.to_thread(self.scheduler.place)
        self._wake_at(report.next_deadline)
