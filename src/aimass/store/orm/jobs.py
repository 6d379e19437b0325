"""ORM rows: jobs, their events, log chunks, metrics and checkpoints."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from aimass.entities.jobs import Job, JobCheckpoint, JobEvent, JobMetric, Resources
from aimass.store.orm.base import Base, ProjectRow, aware_utc, utcnow


class JobRow(Base):
    __tablename__ = "jobs"
    # The scheduler's queue scan: state, then priority desc, then FIFO.
    __table_args__ = (
        Index("ix_jobs_queue", "state", "priority", "created_at"),
        # The keyset-paged list: a project's jobs newest first, all or by state, entry or kind.
        Index("ix_jobs_project_id_id", "project_id", "id"),
        Index("ix_jobs_project_state_id", "project_id", "state", "id"),
        Index("ix_jobs_project_entry_id", "project_id", "entry", "id"),
        Index("ix_jobs_project_kind_id", "project_id", "kind", "id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    project_id: Mapped[int] = mapped_column(
        ForeignKey("projects.id", ondelete="CASCADE"), index=True
    )
    kind: Mapped[str] = mapped_column(String(32))
    entry: Mapped[str] = mapped_column(String(256))
    params: Mapped[dict[str, Any]] = mapped_column(JSON)
    dataset: Mapped[str | None] = mapped_column(String(256), nullable=True)
    dataset_version: Mapped[int | None] = mapped_column(Integer, nullable=True)
    cpu: Mapped[float] = mapped_column(Float)
    gpu: Mapped[int] = mapped_column(Integer, default=0)
    memory_mb: Mapped[int | None] = mapped_column(Integer, nullable=True)
    #: Custom resources (node labels on Ray) by name; None when the job asks for none.
    custom_resources: Mapped[dict[str, float] | None] = mapped_column(JSON, nullable=True)
    priority: Mapped[int] = mapped_column(Integer, default=0)
    state: Mapped[str] = mapped_column(String(16))
    attempt: Mapped[int] = mapped_column(Integer, default=0)
    retries_used: Mapped[int] = mapped_column(Integer, default=0)
    max_retries: Mapped[int] = mapped_column(Integer, default=0)
    infra_requeues: Mapped[int] = mapped_column(Integer, default=0)
    timeout_s: Mapped[float | None] = mapped_column(Float, nullable=True)
    reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    node: Mapped[str | None] = mapped_column(String(256), nullable=True)
    cancel_requested: Mapped[bool] = mapped_column(Boolean, default=False)
    parent_id: Mapped[int | None] = mapped_column(
        ForeignKey("jobs.id", ondelete="SET NULL"), nullable=True, index=True
    )
    outputs: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    # A script job's uploaded code (a .py file or a source archive) in the artifact store.
    source_key: Mapped[str | None] = mapped_column(String(1024), nullable=True)
    source_sha256: Mapped[str | None] = mapped_column(String(64), nullable=True)
    source_name: Mapped[str | None] = mapped_column(String(256), nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    queued_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    next_attempt_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    lease_expires_at: Mapped[datetime | None] = mapped_column(
        DateTime(timezone=True), nullable=True
    )

    project: Mapped[ProjectRow] = relationship(lazy="joined")

    def to_entity(self) -> Job:
        """The entity, with every time in aware UTC."""
        return job_entity(self, self.project.name)


def job_entity(row: Any, project: str) -> Job:
    """The entity of a ``jobs`` row, ORM (``JobRow``) or Core (a ``Row`` of its columns),
    with every time in aware UTC."""

    def when(value: datetime | None) -> datetime | None:
        return aware_utc(value) if value is not None else None

    return Job.model_validate(
        {
            "id": row.id,
            "project": project,
            "kind": row.kind,
            "entry": row.entry,
            "params": row.params,
            "dataset": row.dataset,
            "dataset_version": row.dataset_version,
            "resources": Resources(
                cpu=row.cpu,
                gpu=row.gpu,
                memory_mb=row.memory_mb,
                custom=row.custom_resources or {},
            ),
            "priority": row.priority,
            "state": row.state,
            "attempt": row.attempt,
            "retries_used": row.retries_used,
            "max_retries": row.max_retries,
            "infra_requeues": row.infra_requeues,
            "timeout_s": row.timeout_s,
            "reason": row.reason,
            "node": row.node,
            "parent_id": row.parent_id,
            "cancel_requested": row.cancel_requested,
            "created_at": aware_utc(row.created_at),
            "queued_at": when(row.queued_at),
            "started_at": when(row.started_at),
            "finished_at": when(row.finished_at),
            "next_attempt_at": when(row.next_attempt_at),
            "lease_expires_at": when(row.lease_expires_at),
            "outputs": row.outputs or {},
            "source": row.source_name,
        }
    )


class JobEventRow(Base):
    __tablename__ = "job_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), index=True)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    state: Mapped[str] = mapped_column(String(16))
    attempt: Mapped[int] = mapped_column(Integer)
    reason: Mapped[str | None] = mapped_column(Text, nullable=True)

    def to_entity(self) -> JobEvent:
        """The entity."""
        return JobEvent.model_validate(
            {
                "at": aware_utc(self.at),
                "state": self.state,
                "attempt": self.attempt,
                "reason": self.reason,
            }
        )


class JobLogChunkRow(Base):
    """Bytes of a running attempt's log, shipped by its node so every server can read them.

    ``offset`` is where ``data`` starts in the attempt's log file. The rows of an
    attempt are deleted once its whole log is archived in the artifact store.
    """

    __tablename__ = "job_log_chunks"
    __table_args__ = (Index("ix_job_log_chunks_attempt", "job_id", "attempt", "offset"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"))
    attempt: Mapped[int] = mapped_column(Integer)
    offset: Mapped[int] = mapped_column(BigInteger)
    data: Mapped[bytes] = mapped_column(LargeBinary)


class JobMetricRow(Base):
    __tablename__ = "job_metrics"
    __table_args__ = (Index("ix_job_metrics_series", "job_id", "name", "step"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"))
    attempt: Mapped[int] = mapped_column(Integer)
    name: Mapped[str] = mapped_column(String(256))
    step: Mapped[int] = mapped_column(Integer)
    value: Mapped[float] = mapped_column(Float)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    def to_entity(self) -> JobMetric:
        """The entity."""
        return JobMetric(
            attempt=self.attempt,
            name=self.name,
            step=self.step,
            value=self.value,
            at=aware_utc(self.at),
        )


class JobCheckpointRow(Base):
    __tablename__ = "job_checkpoints"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), index=True)
    attempt: Mapped[int] = mapped_column(Integer)
    step: Mapped[int] = mapped_column(Integer)
    artifact_key: Mapped[str] = mapped_column(String(1024))
    sha256: Mapped[str] = mapped_column(String(64))
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    def to_entity(self) -> JobCheckpoint:
        """The entity."""
        return JobCheckpoint(
            attempt=self.attempt,
            step=self.step,
            artifact_key=self.artifact_key,
            sha256=self.sha256,
            at=aware_utc(self.at),
        )
