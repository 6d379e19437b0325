"""Tokens and roles."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict

Role = Literal["viewer", "editor", "admin"]
ROLE_RANK: dict[str, int] = {"viewer": 0, "editor": 1, "admin": 2}


class Token(BaseModel):
    """A token's record; the secret itself is only shown once, at creation."""

    id: int
    name: str
    role: Role
    project: str | None = None
    created_at: datetime
    revoked_at: datetime | None = None


class Principal(BaseModel):
    """Who is calling: the token's role, limited to one project or to all (None)."""

    token_id: int | None
    name: str
    role: Role
    project: str | None = None
    job_id: int | None = None
    """Set for the token an attempt of this job was given (``aimass.runtime``)."""
    job_attempt: int | None = None
    """The attempt of ``job_id`` the token was minted for; it writes only as that attempt."""

    @property
    def is_global_admin(self) -> bool:
        """True for an admin token not limited to one project (and not a job's)."""
        return self.role == "admin" and self.project is None and self.job_id is None

    def can(self, role: Role, project: str | None) -> bool:
        """True when this principal holds at least ``role`` on ``project``."""
        if self.project is not None and project != self.project:
            return False
        return ROLE_RANK[self.role] >= ROLE_RANK[role]


class TokenWithSecret(Token):
    """Returned once when a token is created."""

    secret: str


class TokenCreate(BaseModel):
    """A new token: a name, a role, and optionally the one project it is limited to."""

    model_config = ConfigDict(extra="forbid")

    name: str
    role: Role
    project: str | None = None
