"""Evaluation: metrics reports for classification, regression, ranking and clustering.

Pure domain code over numpy, pandas and scikit-learn: it computes reports from
arrays and from flavor-loaded models, and compares reports side by side. It must
not import the API, the store or any HTTP library.
"""

from __future__ import annotations

from aimass.evaluation.entities import (
    LOWER_IS_BETTER,
    ComparedVersion,
    Comparison,
    EvaluationReport,
    EvaluationTask,
    PredictionTask,
    compare_reports,
    version_key,
)
from aimass.evaluation.metrics import (
    classification_report,
    clustering_report,
    infer_task,
    ranking_report,
    regression_report,
)
from aimass.evaluation.predict import evaluate_loaded, predictions_and_scores, split_outputs

__all__ = [
    "LOWER_IS_BETTER",
    "ComparedVersion",
    "Comparison",
    "EvaluationReport",
    "EvaluationTask",
    "PredictionTask",
    "classification_report",
    "clustering_report",
    "compare_reports",
    "evaluate_loaded",
    "infer_task",
    "predictions_and_scores",
    "ranking_report",
    "regression_report",
    "split_outputs",
    "version_key",
]
