"""Re-exports :mod:`aimass.entities.datasets` (kept below the store)."""

from __future__ import annotations

from aimass.entities.datasets import (
    ColumnProfile,
    ColumnSchema,
    Dataset,
    DatasetFormat,
    DatasetVersion,
    Histogram,
    Profile,
)

__all__ = [
    "ColumnProfile",
    "ColumnSchema",
    "Dataset",
    "DatasetFormat",
    "DatasetVersion",
    "Histogram",
    "Profile",
]
