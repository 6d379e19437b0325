"""Evaluation reports stored on model versions, and versions compared on one dataset."""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import select
from sqlalchemy.orm import Session

from aimass.artifacts.names import validate_name
from aimass.entities.evaluation import Evaluation, EvaluationCreate
from aimass.errors import NotFound, Unprocessable
from aimass.evaluation import Comparison, EvaluationReport, compare_reports
from aimass.registry.service import _version_row
from aimass.store.orm import (
    DatasetRow,
    DatasetVersionRow,
    EvaluationRow,
    ModelVersionMetricRow,
    aware_utc,
)

#: Checks the job attempt that reports is current; returns (job id, dataset version row id).
EvaluationGuard = Callable[[Session], tuple[int, int | None]]


def _entity(row: EvaluationRow) -> Evaluation:
    dsv = row.dataset_version
    return Evaluation.model_validate(
        {
            "id": row.id,
            "model": row.version.model.name,
            "version": row.version.version,
            "task": row.task,
            "metrics": row.metrics,
            "details": row.details,
            "n_rows": row.n_rows,
            "dataset": dsv.dataset.name if dsv else None,
            "dataset_version": dsv.version if dsv else None,
            "job_id": row.job_id,
            "created_at": aware_utc(row.created_at),
        }
    )


def record_evaluation(
    session: Session, project: str, spec: EvaluationCreate, guard: EvaluationGuard
) -> Evaluation:
    """Store the report and set its metrics on the version (replacing older values)."""
    job_id, dataset_version_id = guard(session)
    version = _version_row(session, project, spec.model, spec.version)
    for key in spec.metrics:
        validate_name(key, "metric name")
    row = EvaluationRow(
        version_id=version.id,
        job_id=job_id,
        dataset_version_id=dataset_version_id,
        task=spec.task,
        metrics=spec.metrics,
        details=spec.details,
        n_rows=spec.n_rows,
    )
    session.add(row)
    existing = {m.key: m for m in version.metrics}
    for key, value in spec.metrics.items():
        if key in existing:
            existing[key].value = float(value)
        else:
            version.metrics.append(ModelVersionMetricRow(key=key, value=float(value)))
    session.flush()
    session.refresh(row)
    return _entity(row)


def list_evaluations(session: Session, project: str, model: str, ref: str) -> list[Evaluation]:
    """A version's reports, newest first."""
    version = _version_row(session, project, model, ref)
    rows = session.scalars(
        select(EvaluationRow)
        .where(EvaluationRow.version_id == version.id)
        .order_by(EvaluationRow.id.desc())
    )
    return [_entity(r) for r in rows]


def compare_versions(
    session: Session, project: str, model: str, refs: list[str], dataset: str
) -> Comparison:
    """Versions side by side: each one's latest report on ``dataset``."""
    if len(refs) < 1:
        raise Unprocessable("versions: name at least one version to compare")
    named: list[tuple[str, int, EvaluationReport]] = []
    for ref in refs:
        version = _version_row(session, project, model, ref)
        row = session.scalars(
            select(EvaluationRow)
            .join(DatasetVersionRow, EvaluationRow.dataset_version_id == DatasetVersionRow.id)
            .join(DatasetRow, DatasetVersionRow.dataset_id == DatasetRow.id)
            .where(EvaluationRow.version_id == version.id, DatasetRow.name == dataset)
            .order_by(EvaluationRow.id.desc())
        ).first()
        if row is None:
            raise NotFound(
                f"version {version.version} of {model!r} has no evaluation on dataset {dataset!r}; "
                "run an evaluate job first"
            )
        report = EvaluationReport.model_validate(
            {"task": row.task, "metrics": row.metrics, "details": row.details, "n_rows": row.n_rows}
        )
        named.append((model, version.version, report))
    return compare_reports(named)
