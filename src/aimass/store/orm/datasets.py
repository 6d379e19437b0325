"""ORM rows: datasets and their versions."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    DateTime,
    ForeignKey,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from aimass.entities.datasets import ColumnSchema, Dataset, DatasetVersion, Profile
from aimass.store.orm.base import Base, ProjectRow, aware_utc, utcnow


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
