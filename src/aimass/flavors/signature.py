"""Re-exports :mod:`aimass.entities.signature` (kept below the store)."""

from __future__ import annotations

from aimass.entities.signature import (
    DATATYPES,
    NUMPY_TO_DATATYPE,
    Signature,
    TensorSpec,
)

__all__ = [
    "DATATYPES",
    "NUMPY_TO_DATATYPE",
    "Signature",
    "TensorSpec",
]
