"""ORM rows: monitoring events and node samples."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    DateTime,
    Float,
    Index,
    Integer,
    String,
    Text,
)
from sqlalchemy.orm import Mapped, mapped_column

from aimass.entities.monitoring import MonitoringEvent, NodeSample
from aimass.store.orm.base import Base, aware_utc, utcnow


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
