"""Re-exports :mod:`aimass.entities.evaluation` (kept below the store)."""

from __future__ import annotations

from aimass.entities.evaluation import (
    LOWER_IS_BETTER,
    ComparedVersion,
    Comparison,
    EvaluationReport,
    EvaluationTask,
    PredictionTask,
    compare_reports,
    version_key,
)

__all__ = [
    "LOWER_IS_BETTER",
    "ComparedVersion",
    "Comparison",
    "EvaluationReport",
    "EvaluationTask",
    "PredictionTask",
    "compare_reports",
    "version_key",
]
