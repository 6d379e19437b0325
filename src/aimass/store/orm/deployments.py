"""ORM rows: deployments and what their replicas report."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    DateTime,
    ForeignKey,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from aimass.store.orm.base import Base, ProjectRow, utcnow
from aimass.store.orm.registry import ModelRow


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
    #: With ``runner: "ray"``: each Ray actor replica's state and node
    #: (``entities.deployments.ReplicaPlacement``), as this server last saw them.
    placement: Mapped[list[dict[str, object]] | None] = mapped_column(JSON, nullable=True)
    #: With autoscaling: the runner processes it sends requests to, and the count its node
    #: wants (None without autoscaling).
    replicas: Mapped[int | None] = mapped_column(Integer, nullable=True)
    desired_replicas: Mapped[int | None] = mapped_column(Integer, nullable=True)
    #: The device its model runs on: ``cpu``, ``cuda (GPU 0)``; None until loaded.
    device: Mapped[str | None] = mapped_column(String(128), nullable=True)
