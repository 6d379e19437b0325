"""Re-exports :mod:`aimass.entities.auth` (kept below the store)."""

from __future__ import annotations

from aimass.entities.auth import (
    ROLE_RANK,
    Principal,
    Role,
    Token,
    TokenWithSecret,
)

__all__ = [
    "ROLE_RANK",
    "Principal",
    "Role",
    "Token",
    "TokenWithSecret",
]
