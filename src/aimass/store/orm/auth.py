"""ORM rows: aPI tokens."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    DateTime,
    ForeignKey,
    Integer,
    String,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from aimass.entities.auth import Token
from aimass.store.orm.base import Base, ProjectRow, aware_utc, utcnow


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
