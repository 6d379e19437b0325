"""ORM rows: the model registry: models, versions, tags, metrics, aliases."""

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
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from aimass.entities.registry import Lineage, Model, ModelVersion
from aimass.entities.signature import Signature
from aimass.store.orm.base import Base, ProjectRow, aware_utc, utcnow
from aimass.store.orm.datasets import DatasetVersionRow


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
