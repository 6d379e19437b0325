"""``PipelineRunner``: the loop that carries pipeline runs forward, one step at a time.

Each tick looks at every active run and, where something can move, takes the
run's row lock (``service.lock_run``) and in that one transaction: records the
end of steps whose jobs ended, evaluates conditions, submits the jobs of steps
whose dependencies succeeded, performs actions, and marks the run. A job is
submitted in the same transaction that marks its step running, so it is
submitted exactly once even with several processes running this loop.
"""

from __future__ import annotations

import logging
from datetime import datetime

from pydantic import JsonValue
from sqlalchemy import select
from sqlalchemy.orm import Session

from aimass.errors import AimassError, NotFound, StaleLeadership, Unprocessable
from aimass.jobs.entities import TERMINAL_STATES
from aimass.jobs.submitting_loop import SubmitJob, SubmittingLoop
from aimass.pipelines import service
from aimass.pipelines.conditions import Outputs, evaluate, fill_params, parse_path, resolve
from aimass.pipelines.entities import TERMINAL_STEP_STATES, AliasMetric, Step
from aimass.registry.service import read_version, set_alias
from aimass.store.orm import JobRow, PipelineRunRow, PipelineStepRow, utcnow

log = logging.getLogger("aimass.pipelines")


def _needs_work(session: Session, run_id: int) -> bool:
    """Whether a tick could change this run (read without locking anything)."""
    run = session.execute(
        select(PipelineRunRow.state, PipelineRunRow.spec).where(PipelineRunRow.id == run_id)
    ).first()
    if run is None or run.state not in service.ACTIVE_RUN_STATES:
        return False
    if run.state == "pending":
        return True
    rows = session.execute(
        select(PipelineStepRow.name, PipelineStepRow.state, JobRow.state)
        .outerjoin(JobRow, PipelineStepRow.job_id == JobRow.id)
        .where(PipelineStepRow.run_id == run_id)
    ).all()
    states = {name: state for name, state, _ in rows}
    for _, state, job_state in rows:
        if state == "running" and (job_state is None or job_state in TERMINAL_STATES):
            return True
    for spec in run.spec:
        needs = spec.get("needs", [])
        if states.get(spec["name"]) == "pending" and all(
            states.get(n) in TERMINAL_STEP_STATES for n in needs
        ):
            return True
    return all(s in TERMINAL_STEP_STATES for s in states.values())


def _fail(row: PipelineStepRow, reason: str, now: datetime) -> None:
    row.state = "failed"
    row.reason = reason
    row.finished_at = now


def _observe_job(session: Session, row: PipelineStepRow, now: datetime) -> None:
    """A running step ends with its job: succeeded with the job's outputs, or failed."""
    job = session.get(JobRow, row.job_id) if row.job_id is not None else None
    if job is None:
        _fail(row, f"its job {row.job_id} no longer exists", now)
    elif job.state == "succeeded":
        row.state = "succeeded"
        row.outputs = dict(job.outputs or {})
        row.finished_at = now
    elif job.state in TERMINAL_STATES:
        _fail(row, f"job {job.id} {job.state}: {job.reason or 'no reason given'}", now)


class _Advance:
    """One locked pass over a run's steps, in running order."""

    def __init__(self, session: Session, run: PipelineRunRow, submit: SubmitJob, now: datetime):
        self.session = session
        self.run = run
        self.project = run.pipeline.project.name
        self.submit = submit
        self.now = now
        self.submitted: list[int] = []

    def alias_metric(self, spec: AliasMetric) -> float | None:
        try:
            version = read_version(self.session, self.project, spec.model, spec.alias)
        except NotFound:
            return None
        return version.metrics.get(spec.metric)

    def start(self, row: PipelineStepRow, step: Step, outputs: Outputs) -> None:
        """Start a step whose dependencies all succeeded: skip it, run its job, or act."""
        row.started_at = self.now
        note: str | None = None
        try:
            if step.when is not None:
                held, words = evaluate(step.when, outputs, self.alias_metric)
                if not held:
                    row.state = "skipped"
                    row.reason = f"condition false: {words}"
                    row.finished_at = self.now
                    return
                note = f"condition true: {words}"
            if step.job is not None:
                params = fill_params(step.job.params, outputs)
                job = self.submit(
                    self.session, self.project, step.job.model_copy(update={"params": params})
                )
                row.state, row.job_id, row.reason = "running", job.id, note
                self.submitted.append(job.id)
            elif step.action is not None:
                action = step.action
                version = action.version or _version(
                    resolve(parse_path(action.version_from or "", "version_from"), outputs)
                )
                set_alias(self.session, self.project, action.model, action.alias, version)
                row.state, row.reason, row.finished_at = "succeeded", note, self.now
                row.outputs = {"model": action.model, "alias": action.alias, "version": version}
        except AimassError as exc:
            _fail(row, exc.message, self.now)

    def __call__(self) -> None:
        rows = {r.name: r for r in self.run.steps}
        steps = [Step.model_validate(spec) for spec in self.run.spec]
        for row in rows.values():
            if row.state == "running":
                _observe_job(self.session, row, self.now)
        outputs = {r.name: dict(r.outputs or {}) for r in rows.values() if r.state == "succeeded"}
        for step in steps:  # in running order: an action's result serves later steps at once
            row = rows[step.name]
            if any(r.state == "failed" for r in rows.values()):
                break
            if row.state != "pending":
                continue
            needs = [rows[n] for n in step.needs]
            skipped = next((n for n in needs if n.state == "skipped"), None)
            if skipped is not None:
                row.state = "skipped"
                row.reason = f"step {skipped.name!r} it needs was skipped"
                row.finished_at = self.now
            elif all(n.state == "succeeded" for n in needs):
                self.start(row, step, outputs)
                if row.state == "succeeded":
                    outputs[row.name] = dict(row.outputs or {})
        failed = next((r for r in self.run.steps if r.state == "failed"), None)
        if failed is not None:
            self.run.state = "failed"
            self.run.reason = f"step {failed.name!r} failed: {failed.reason}"
            self.run.finished_at = self.now
            service.stop_steps(self.session, self.run, f"step {failed.name!r} failed", self.now)
        elif all(r.state in TERMINAL_STEP_STATES for r in rows.values()):
            self.run.state = "succeeded"
            self.run.finished_at = self.now


def _version(value: JsonValue) -> int:
    if isinstance(value, int) and not isinstance(value, bool) and value >= 1:
        return value
    if isinstance(value, str) and value.isdigit() and int(value) >= 1:
        return int(value)
    raise Unprocessable(f"action.version_from: {value!r} is not a version number")


def advance_run(
    session: Session, run_id: int, submit: SubmitJob, now: datetime | None = None
) -> list[int]:
    """Carry one run forward as far as it can go now; the ids of the jobs it submitted."""
    now = now or utcnow()
    if not _needs_work(session, run_id):
        return []
    if not service.lock_run(session, run_id, now):
        return []  # finished or cancelled meanwhile
    session.expire_all()  # read the run as the lock holder sees it, not as read before
    run = session.get(PipelineRunRow, run_id)
    assert run is not None
    if run.state == "pending":
        run.state, run.started_at = "running", now
    advance = _Advance(session, run, submit, now)
    advance()
    session.flush()
    return advance.submitted


class PipelineRunner(SubmittingLoop):
    """Advances every active run each tick (0.5 s, or at once on ``wake()``).

    ``notify`` is called after a tick that submitted jobs has committed (the app
    wakes its scheduler there). Safe to run in every server process.
    """

    name = "pipeline-runner"
    default_interval = 0.5

    def tick(self, now: datetime | None = None) -> list[int]:
        """One pass over the active runs; the ids of the jobs submitted."""
        with self.db.session() as session:
            run_ids = service.active_run_ids(session)
        submitted: list[int] = []
        for run_id in run_ids:
            try:
                with self.db.session() as session:
                    self.fenced(session)
                    submitted += advance_run(session, run_id, self.submit, now)
            except StaleLeadership:
                break
            except Exception:
                log.exception("advancing pipeline run %s failed; trying again next tick", run_id)
        return submitted
