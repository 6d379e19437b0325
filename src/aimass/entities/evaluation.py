"""Evaluation entities: one report of metrics, and a side-by-side comparison of reports."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, JsonValue

from aimass.errors import Unprocessable

EvaluationTask = Literal[
    "classification", "regression", "ranking", "clustering", "reinforcement_learning"
]
#: The tasks evaluated from a model's predictions on labelled rows.
PredictionTask = Literal["classification", "regression"]

#: Metrics where a smaller value is better; every other metric is better when larger.
LOWER_IS_BETTER: frozenset[str] = frozenset({"rmse", "mae", "log_loss"})


class EvaluationReport(BaseModel):
    """The metrics of one evaluation: finite floats by name, plus structured details.

    ``metrics`` never holds NaN or infinity: a metric that is undefined for the
    data is left out and ``details["skipped"]`` says why.
    """

    task: EvaluationTask
    metrics: dict[str, float]
    details: dict[str, JsonValue] = Field(default_factory=dict)
    n_rows: int


class ComparedVersion(BaseModel):
    """One row of a comparison: a model version and its metrics."""

    model: str
    version: int
    metrics: dict[str, float]

    @property
    def key(self) -> str:
        """The version's column name in a comparison table, ``"model:vN"``."""
        return version_key(self.model, self.version)


class Comparison(BaseModel):
    """Reports side by side: ``table`` is metric -> {"model:vN": value}, ``best`` metric -> key.

    ``best`` takes the largest value, or the smallest for :data:`LOWER_IS_BETTER`
    metrics; on a tie the version listed first wins. A metric that some reports
    lack is compared over the reports that have it.
    """

    task: EvaluationTask
    versions: list[ComparedVersion]
    table: dict[str, dict[str, float]]
    best: dict[str, str]


class Evaluation(BaseModel):
    """A stored report: which version, on which dataset, by which job."""

    id: int
    model: str
    version: int
    task: EvaluationTask
    metrics: dict[str, float]
    details: dict[str, JsonValue]
    n_rows: int
    dataset: str | None
    dataset_version: int | None
    job_id: int | None
    created_at: datetime


def version_key(model: str, version: int) -> str:
    """Name a model version as comparisons do: ``"iris:v3"``."""
    return f"{model}:v{version}"


def compare_reports(named: list[tuple[str, int, EvaluationReport]]) -> Comparison:
    """Put reports of one task side by side and pick the best version for each metric."""
    if not named:
        raise Unprocessable("there are no reports to compare")
    tasks = {report.task for _, _, report in named}
    if len(tasks) > 1:
        raise Unprocessable(
            f"cannot compare reports of different tasks: {', '.join(sorted(tasks))}"
        )
    versions = [
        ComparedVersion(model=model, version=version, metrics=dict(report.metrics))
        for model, version, report in named
    ]
    keys = [row.key for row in versions]
    repeated = sorted({key for key in keys if keys.count(key) > 1})
    if repeated:
        raise Unprocessable(f"each version may be compared once; repeated: {', '.join(repeated)}")
    table: dict[str, dict[str, float]] = {}
    for row in versions:
        for metric, value in row.metrics.items():
            table.setdefault(metric, {})[row.key] = value
    best: dict[str, str] = {}
    for metric, values in table.items():
        lower = metric in LOWER_IS_BETTER
        # min/max return the first of equal values, so ties go to the version listed first.
        pick = min if lower else max
        best[metric] = pick(values, key=values.__getitem__)
    return Comparison(task=tasks.pop(), versions=versions, table=table, best=best)


class EvaluationCreate(BaseModel):
    """What an evaluation job reports about one version."""

    model_config = ConfigDict(extra="forbid")

    model: str = Field(min_length=1, max_length=256)
    version: int = Field(ge=1)
    task: EvaluationTask
    metrics: dict[str, float]
    details: dict[str, JsonValue] = Field(default_factory=dict)
    n_rows: int = Field(ge=0)
