"""Re-exports :mod:`aimass.entities.registry` (kept below the store)."""

from __future__ import annotations

from aimass.entities.registry import (
    JobAttemptRef,
    Lineage,
    Model,
    ModelCreate,
    ModelUpdate,
    ModelVersion,
    VersionCreate,
    VersionQuery,
    VersionStatus,
    VersionUpdate,
)

__all__ = [
    "JobAttemptRef",
    "Lineage",
    "Model",
    "ModelCreate",
    "ModelUpdate",
    "ModelVersion",
    "VersionCreate",
    "VersionQuery",
    "VersionStatus",
    "VersionUpdate",
]
