"""ORM rows (``*Row``) and their conversion to entities."""

from __future__ import annotations

from datetime import UTC, datetime
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
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from aimass.entities.auth import Token
from aimass.entities.datasets import ColumnSchema, Dataset, DatasetVersion, Profile
from aimass.entities.jobs import Job, JobCheckpoint, JobEvent, JobMetric, Resources
from aimass.entities.monitoring import MonitoringEvent, NodeSample
from aimass.entities.registry import Lineage, Model, ModelVersion
from aimass.entities.signature import Signature


def utcnow() -> datetime:
    """Timezone-aware now, the only clock rows use."""
    return datetime.now(UTC)


def aware_utc(value: datetime) -> datetime:
    # SQLite hands back naive datetimes; every stored time is UTC.
    return value if value.tzinfo else value.replace(tzinfo=UTC)


class Base(DeclarativeBase):
    """Declarative base of every row."""


class ProjectRow(Base):
    __tablename__ = "projects"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(128), unique=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class ModelRow(Base):
    __tablename__ = "models"
    __table_args__ = (UniqueConstraint("project_id", "name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(256))
    description: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    project: Mapped[ProjectRow] = relationship(lazy="joined")
    tags: Mapped[list[ModelTagRow]] = relationship(cascade="all, delete-orphan", lazy="selectin")
    aliases: Mapped[list[AliasRow]] = relationship(
        cascade="all, delete-orphan", lazy="selectin", back_populates="model"
    )
    versions: Mapped[list[ModelVersionRow]] = relationship(
        cascade="all, delete-orphan", lazy="raise", back_populates="model"
    )

    def to_entity(self, latest_version: int | None = None) -> Model:
        """The entity, with aliases resolved to version numbers."""
        return Model(
            id=self.id,
            project=self.project.name,
            name=self.name,
            description=self.description,
            tags={t.key: t.value for t in self.tags},
            aliases={a.name: a.version.version for a in self.aliases},
            latest_version=latest_version,
            created_at=aware_utc(self.created_at),
            updated_at=aware_utc(self.updated_at),
        )


class ModelTagRow(Base):
    __tablename__ = "model_tags"

    model_id: Mapped[int] = mapped_column(
        ForeignKey("models.id", ondelete="CASCADE"), primary_key=True
    )
    key: Mapped[str] = mapped_column(String(256), primary_key=True)
    value: Mapped[str] = mapped_column(Text, default="")


class ModelVersionRow(Base):
    __tablename__ = "model_versions"
    __table_args__ = (UniqueConstraint("model_id", "version"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    model_id: Mapped[int] = mapped_column(ForeignKey("models.id", ondelete="CASCADE"), index=True)
    version: Mapped[int] = mapped_column(Integer)
    flavor: Mapped[str] = mapped_column(String(64), index=True)
    filename: Mapped[str] = mapped_column(String(256))
    artifact_key: Mapped[str] = mapped_column(String(1024))
    sha256: Mapped[str] = mapped_column(String(64))
    size: Mapped[int] = mapped_column(BigInteger)
    trusted: Mapped[bool] = mapped_column(Boolean, default=False)
    signature: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    description: Mapped[str] = mapped_column(Text, default="")
    status: Mapped[str] = mapped_column(String(16), default="ready")
    source_job_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    source_dataset_version_id: Mapped[int | None] = mapped_column(
        ForeignKey("dataset_versions.id", ondelete="SET NULL"), nullable=True
    )
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    model: Mapped[ModelRow] = relationship(back_populates="versions", lazy="joined")
    tags: Mapped[list[ModelVersionTagRow]] = relationship(
        cascade="all, delete-orphan", lazy="selectin"
    )
    metrics: Mapped[list[ModelVersionMetricRow]] = relationship(
        cascade="all, delete-orphan", lazy="selectin"
    )
    source_dataset_version: Mapped[DatasetVersionRow | None] = relationship(lazy="selectin")

    def to_entity(self) -> ModelVersion:
        """The entity, with tags, metrics, aliases and lineage filled in."""
        dsv = self.source_dataset_version
        return ModelVersion(
            id=self.id,
            project=self.model.project.name,
            model=self.model.name,
            version=self.version,
            flavor=self.flavor,
            filename=self.filename,
            sha256=self.sha256,
            size=self.size,
            trusted=self.trusted,
            signature=Signature.model_validate(self.signature) if self.signature else None,
            metrics={m.key: m.value for m in self.metrics},
            tags={t.key: t.value for t in self.tags},
            description=self.description,
            status="archived" if self.status == "archived" else "ready",
            aliases=sorted(a.name for a in self.model.aliases if a.version_id == self.id),
            lineage=Lineage(
                job_id=self.source_job_id,
                dataset=dsv.dataset.name if dsv else None,
                dataset_version=dsv.version if dsv else None,
            ),
            created_at=aware_utc(self.created_at),
        )


class ModelVersionTagRow(Base):
    __tablename__ = "model_version_tags"

    version_id: Mapped[int] = mapped_column(
        ForeignKey("model_versions.id", ondelete="CASCADE"), primary_key=True
    )
    key: Mapped[str] = mapped_column(String(256), primary_key=True)
    value: Mapped[str] = mapped_column(Text, default="")


class ModelVersionMetricRow(Base):
    __tablename__ = "model_version_metrics"

    version_id: Mapped[int] = mapped_column(
        ForeignKey("model_versions.id", ondelete="CASCADE"), primary_key=True
    )
    key: Mapped[str] = mapped_column(String(256), primary_key=True)
    value: Mapped[float] = mapped_column(Float)


class AliasRow(Base):
    __tablename__ = "aliases"

    model_id: Mapped[int] = mapped_column(
        ForeignKey("models.id", ondelete="CASCADE"), primary_key=True
    )
    name: Mapped[str] = mapped_column(String(128), primary_key=True)
    version_id: Mapped[int] = mapped_column(ForeignKey("model_versions.id", ondelete="CASCADE"))

    model: Mapped[ModelRow] = relationship(back_populates="aliases")
    version: Mapped[ModelVersionRow] = relationship(lazy="joined")


class DatasetRow(Base):
    __tablename__ = "datasets"
    __table_args__ = (UniqueConstraint("project_id", "name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(256))
    description: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    project: Mapped[ProjectRow] = relationship(lazy="joined")

    def to_entity(self, latest_version: int | None = None) -> Dataset:
        """The entity."""
        return Dataset(
            id=self.id,
            project=self.project.name,
            name=self.name,
            description=self.description,
            latest_version=latest_version,
            created_at=aware_utc(self.created_at),
        )


class DatasetVersionRow(Base):
    __tablename__ = "dataset_versions"
    __table_args__ = (UniqueConstraint("dataset_id", "version"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    dataset_id: Mapped[int] = mapped_column(
        ForeignKey("datasets.id", ondelete="CASCADE"), index=True
    )
    version: Mapped[int] = mapped_column(Integer)
    format: Mapped[str] = mapped_column(String(16))
    filename: Mapped[str] = mapped_column(String(256))
    artifact_key: Mapped[str] = mapped_column(String(1024))
    sha256: Mapped[str] = mapped_column(String(64))
    size: Mapped[int] = mapped_column(BigInteger)
    num_rows: Mapped[int] = mapped_column(Integer)
    columns: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    profile: Mapped[dict[str, Any]] = mapped_column(JSON)
    description: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    dataset: Mapped[DatasetRow] = relationship(lazy="joined")

    def to_entity(self) -> DatasetVersion:
        """The entity."""
        fmt = self.format if self.format in ("csv", "parquet", "npz") else "csv"
        return DatasetVersion(
            id=self.id,
            project=self.dataset.project.name,
            dataset=self.dataset.name,
            version=self.version,
            format=fmt,
            filename=self.filename,
            sha256=self.sha256,
            size=self.size,
            num_rows=self.num_rows,
            columns=[ColumnSchema.model_validate(c) for c in self.columns],
            profile=Profile.model_validate(self.profile),
            description=self.description,
            created_at=aware_utc(self.created_at),
        )


class TokenRow(Base):
    __tablename__ = "tokens"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(128))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    role: Mapped[str] = mapped_column(String(16))
    project_id: Mapped[int | None] = mapped_column(
        ForeignKey("projects.id", ondelete="CASCADE"), nullable=True
    )
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    # Set on the tokens minted for a job's attempts; revoked when the job ends.
    job_id: Mapped[int | None] = mapped_column(
        ForeignKey("jobs.id", ondelete="CASCADE"), nullable=True, index=True
    )
    # The attempt a job's token was minted for: it writes only as that attempt.
    job_attempt: Mapped[int | None] = mapped_column(Integer, nullable=True)

    project: Mapped[ProjectRow | None] = relationship(lazy="joined")

    def to_entity(self) -> Token:
        """The entity, without the hash."""
        return Token(
            id=self.id,
            name=self.name,
            role=self.role,
            project=self.project.name if self.project else None,
            created_at=aware_utc(self.created_at),
            revoked_at=aware_utc(self.revoked_at) if self.revoked_at else None,
        )


class DeploymentRow(Base):
    __tablename__ = "deployments"
    __table_args__ = (UniqueConstraint("project_id", "name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(256))
    model_id: Mapped[int] = mapped_column(ForeignKey("models.id", ondelete="CASCADE"), index=True)
    spec: Mapped[dict[str, Any]] = mapped_column(JSON)
    revision: Mapped[int] = mapped_column(Integer, default=1)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    project: Mapped[ProjectRow] = relationship(lazy="joined")
    model: Mapped[ModelRow] = relationship(lazy="joined")
    replicas: Mapped[list[DeploymentReplicaRow]] = relationship(
        cascade="all, delete-orphan", lazy="selectin"
    )


class DeploymentReplicaRow(Base):
    __tablename__ = "deployment_replicas"

    deployment_id: Mapped[int] = mapped_column(
        ForeignKey("deployments.id", ondelete="CASCADE"), primary_key=True
    )
    replica: Mapped[str] = mapped_column(String(128), primary_key=True)
    state: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    versions: Mapped[list[int]] = mapped_column(JSON, default=list)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    #: When a replica whose load failed for a passing reason tries again (None: it waits
    #: for a change of the deployment).
    retry_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    #: Where this replica runs the model (``entities.deployments.EffectiveRunner``).
    runner: Mapped[str | None] = mapped_column(String(16), nullable=True)


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

        def when(value: datetime | None) -> datetime | None:
            return aware_utc(value) if value is not None else None

        return Job.model_validate(
            {
                "id": self.id,
                "project": self.project.name,
                "kind": self.kind,
                "entry": self.entry,
                "params": self.params,
                "dataset": self.dataset,
                "dataset_version": self.dataset_version,
                "resources": Resources(
                    cpu=self.cpu,
                    gpu=self.gpu,
                    memory_mb=self.memory_mb,
                    custom=self.custom_resources or {},
                ),
                "priority": self.priority,
                "state": self.state,
                "attempt": self.attempt,
                "retries_used": self.retries_used,
                "max_retries": self.max_retries,
                "infra_requeues": self.infra_requeues,
                "timeout_s": self.timeout_s,
                "reason": self.reason,
                "node": self.node,
                "parent_id": self.parent_id,
                "cancel_requested": self.cancel_requested,
                "created_at": aware_utc(self.created_at),
                "queued_at": when(self.queued_at),
                "started_at": when(self.started_at),
                "finished_at": when(self.finished_at),
                "next_attempt_at": when(self.next_attempt_at),
                "lease_expires_at": when(self.lease_expires_at),
                "outputs": self.outputs or {},
                "source": self.source_name,
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


class EvaluationRow(Base):
    __tablename__ = "evaluations"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    version_id: Mapped[int] = mapped_column(
        ForeignKey("model_versions.id", ondelete="CASCADE"), index=True
    )
    job_id: Mapped[int | None] = mapped_column(
        ForeignKey("jobs.id", ondelete="SET NULL"), nullable=True
    )
    dataset_version_id: Mapped[int | None] = mapped_column(
        ForeignKey("dataset_versions.id", ondelete="SET NULL"), nullable=True
    )
    task: Mapped[str] = mapped_column(String(32))
    metrics: Mapped[dict[str, Any]] = mapped_column(JSON)
    details: Mapped[dict[str, Any]] = mapped_column(JSON)
    n_rows: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    version: Mapped[ModelVersionRow] = relationship(lazy="joined")
    dataset_version: Mapped[DatasetVersionRow | None] = relationship(lazy="joined")


class PipelineRow(Base):
    __tablename__ = "pipelines"
    __table_args__ = (UniqueConstraint("project_id", "name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(128))
    description: Mapped[str] = mapped_column(Text, default="")
    # The steps in topological order, as PipelineCreate validated them.
    spec: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    revision: Mapped[int] = mapped_column(Integer, default=1)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    project: Mapped[ProjectRow] = relationship(lazy="joined")


class PipelineRunRow(Base):
    __tablename__ = "pipeline_runs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    pipeline_id: Mapped[int] = mapped_column(
        ForeignKey("pipelines.id", ondelete="CASCADE"), index=True
    )
    revision: Mapped[int] = mapped_column(Integer)
    # A copy of the pipeline's steps when the run started: replacing the pipeline
    # does not change runs already under way.
    spec: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    state: Mapped[str] = mapped_column(String(16), index=True)
    reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    trigger: Mapped[str] = mapped_column(String(256))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    pipeline: Mapped[PipelineRow] = relationship(lazy="joined")
    steps: Mapped[list[PipelineStepRow]] = relationship(
        cascade="all, delete-orphan", lazy="selectin", order_by="PipelineStepRow.position"
    )


class PipelineStepRow(Base):
    __tablename__ = "pipeline_run_steps"

    run_id: Mapped[int] = mapped_column(
        ForeignKey("pipeline_runs.id", ondelete="CASCADE"), primary_key=True
    )
    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    position: Mapped[int] = mapped_column(Integer)
    state: Mapped[str] = mapped_column(String(16))
    job_id: Mapped[int | None] = mapped_column(
        ForeignKey("jobs.id", ondelete="SET NULL"), nullable=True, index=True
    )
    reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    outputs: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class ScheduleRow(Base):
    __tablename__ = "schedules"
    # fire_due's scan: enabled schedules by next_run_at.
    __table_args__ = (
        UniqueConstraint("project_id", "name"),
        Index("ix_schedules_due", "enabled", "next_run_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(128))
    cron: Mapped[str] = mapped_column(String(128))
    timezone: Mapped[str] = mapped_column(String(64))
    job: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    pipeline: Mapped[str | None] = mapped_column(String(128), nullable=True)
    enabled: Mapped[bool] = mapped_column(Boolean)
    next_run_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    last_run_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    last_job_id: Mapped[int | None] = mapped_column(
        ForeignKey("jobs.id", ondelete="SET NULL"), nullable=True
    )
    last_pipeline_run_id: Mapped[int | None] = mapped_column(
        ForeignKey("pipeline_runs.id", ondelete="SET NULL"), nullable=True
    )
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    project: Mapped[ProjectRow] = relationship(lazy="joined")


class MonitoringEventRow(Base):
    """Something monitoring noticed (a drift, an alert firing or resolving)."""

    __tablename__ = "monitoring_events"
    __table_args__ = (Index("ix_monitoring_events_project_time", "project", "created_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    project: Mapped[str] = mapped_column(String(128))
    kind: Mapped[str] = mapped_column(String(32))
    subject: Mapped[str] = mapped_column(String(256))
    severity: Mapped[str] = mapped_column(String(16))
    message: Mapped[str] = mapped_column(Text)
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    def to_entity(self) -> MonitoringEvent:
        return MonitoringEvent(
            id=self.id,
            project=self.project,
            kind=self.kind,
            subject=self.subject,
            severity=self.severity,
            message=self.message,
            details=dict(self.details or {}),
            created_at=aware_utc(self.created_at),
        )


class NodeSampleRow(Base):
    """One node's CPU, memory, disk and network at a moment, raw or averaged over a bucket."""

    __tablename__ = "node_samples"
    __table_args__ = (Index("ix_node_samples_node_time", "node", "resolution_s", "at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    node: Mapped[str] = mapped_column(String(256))
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    resolution_s: Mapped[int] = mapped_column(Integer)
    cpu_percent: Mapped[float] = mapped_column(Float)
    memory_used_bytes: Mapped[float] = mapped_column(Float)
    memory_total_bytes: Mapped[float] = mapped_column(Float)
    disk_used_bytes: Mapped[float] = mapped_column(Float)
    disk_total_bytes: Mapped[float] = mapped_column(Float)
    net_rx_bytes_per_s: Mapped[float] = mapped_column(Float)
    net_tx_bytes_per_s: Mapped[float] = mapped_column(Float)
    gpu_percent: Mapped[float | None] = mapped_column(Float, nullable=True)

    def to_entity(self) -> NodeSample:
        return NodeSample(
            node=self.node,
            at=aware_utc(self.at),
            resolution_s=self.resolution_s,
            cpu_percent=self.cpu_percent,
            memory_used_bytes=self.memory_used_bytes,
            memory_total_bytes=self.memory_total_bytes,
            disk_used_bytes=self.disk_used_bytes,
            disk_total_bytes=self.disk_total_bytes,
            net_rx_bytes_per_s=self.net_rx_bytes_per_s,
            net_tx_bytes_per_s=self.net_tx_bytes_per_s,
            gpu_percent=self.gpu_percent,
        )


class LeaderLeaseRow(Base):
    """Who leads an installation's shared work: the holder, its lease and the epoch.

    The epoch goes up by one on every takeover; a leader's scheduling writes
    check it in their own transaction (``scheduler.leader.Leadership.fence``).
    """

    __tablename__ = "leader_leases"

    name: Mapped[str] = mapped_column(String(128), primary_key=True)
    epoch: Mapped[int] = mapped_column(BigInteger, default=0)
    holder: Mapped[str | None] = mapped_column(String(256), nullable=True)
    #: How a contender tells the holder is gone: ``pg:<backend pid>`` or ``pid:<host>:<pid>``.
    liveness: Mapped[str | None] = mapped_column(String(256), nullable=True)
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
