"""ORM rows: the leader's lease."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    BigInteger,
    DateTime,
    String,
)
from sqlalchemy.orm import Mapped, mapped_column

from aimass.store.orm.base import Base


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
