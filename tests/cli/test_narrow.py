"""What a user sees at 80 columns: each list table, with realistic rows, keeps its key columns."""

from __future__ import annotations

import io
from datetime import UTC, datetime

from rich.console import Console
from rich.table import Table

from aimass.cli._job_format import outcome
from aimass.cli._session import _error_line
from aimass.cli.deployments import deployments_table
from aimass.cli.jobs import jobs_table
from aimass.cli.models import models_table
from aimass.cli.predict import score_heading
from aimass.cli.zoo import zoo_table
from aimass.entities.catalog import ZooEntry
from aimass.entities.deployments import Batching, Deployment, Resources, TrafficRoute
from aimass.entities.jobs import Job
from aimass.entities.jobs import Resources as JobResources
from aimass.entities.registry import Model
from aimass.errors import InvalidInput

NOW = datetime(2026, 12, 4, 21, 0, tzinfo=UTC)


def render(table: Table) -> list[str]:
    """The table's lines as an 80-column terminal shows them."""
    console = Console(width=80, record=True, file=io.StringIO())
    console.print(table)
    lines = console.export_text().splitlines()
    assert all(len(line) <= 80 for line in lines)
    return lines


def row_of(lines: list[str], key: str) -> str:
    return next(line for line in lines if line.startswith(key))


def test_deployments_list_keeps_routes_and_batching_at_80_columns() -> None:
    deployment = Deployment(
        id=1,
        project="default",
        name="iris-classifier",
        model="classical.random_forest",
        routes=[TrafficRoute(version=1, weight=90), TrafficRoute(alias="canary", weight=10)],
        replicas=2,
        batching=Batching(max_batch_size=64, max_delay_ms=2),
        resources=Resources(),
        revision=3,
        state="ready",
        created_at=NOW,
        updated_at=NOW,
    )
    lines = render(deployments_table([deployment]))
    text = "\n".join(lines)
    for header in ("name", "model", "routes", "replicas", "batching", "state"):
        assert header in lines[1]
    row = row_of(lines, "iris-classifier")
    assert "classical.random_forest" in row
    assert "v1 90%" in row and "64/2ms" in row and "ready" in row
    assert "canary 10%" in text
    assert "…" not in text


def test_models_list_keeps_the_updated_time_whole() -> None:
    model = Model(
        id=1,
        project="default",
        name="classical.gradient_boosting",
        description="Gradient boosting on iris, trained by job 12 from the model library",
        tags={"team": "ml"},
        aliases={"prod": 3, "canary": 4},
        latest_version=4,
        created_at=NOW,
        updated_at=NOW,
    )
    lines = render(models_table([model]))
    row = row_of(lines, "classical.gradient_boosting")
    updated = NOW.astimezone().strftime("%m-%d %H:%M")
    assert row.endswith(updated)
    assert "prod=3, canary=4" in row and "team=ml" in row
    assert "updated" in lines[1]


def _job(job_id: int, kind: str, entry: str, state: str, reason: str | None = None) -> Job:
    return Job(
        id=job_id,
        project="default",
        kind=kind,  # type: ignore[arg-type]
        entry=entry,
        params={},
        dataset="iris",
        dataset_version=1,
        resources=JobResources(),
        priority=0,
        state=state,  # type: ignore[arg-type]
        attempt=1,
        retries_used=0,
        max_retries=0,
        infra_requeues=0,
        timeout_s=None,
        reason=reason,
        node=None,
        parent_id=None,
        cancel_requested=False,
        created_at=NOW,
        queued_at=NOW,
        started_at=NOW,
        finished_at=NOW,
        next_attempt_at=None,
        lease_expires_at=None,
        outputs={},
    )


def test_jobs_list_keeps_entry_names_whole() -> None:
    jobs = [
        _job(12, "batch_predict", "classical.gradient_boosting", "succeeded"),
        _job(13, "evaluate", "classical.logistic_regression", "failed", "x" * 200),
    ]
    lines = render(jobs_table(jobs))
    first = row_of(lines, "12")
    assert "batch_predict" in first and "classical.gradient_boosting" in first
    assert "succeeded" in first
    second = row_of(lines, "13")
    assert "classical.logistic_regression" in second and "failed" in second
    assert second.endswith("…")  # only the reason gives way


def test_zoo_list_keeps_tasks_on_one_line() -> None:
    entries = [
        ZooEntry(
            name="classical.gradient_boosting",
            description="-",
            task="classification",
            default_dataset="iris",
            exports=["sklearn", "onnx"],
        ),
        ZooEntry(
            name="vision.cnn",
            description="-",
            task="image_classification",
            default_dataset="mnist_small",
            exports=["torchscript", "onnx"],
        ),
    ]
    lines = render(zoo_table(entries))
    assert "classification" in row_of(lines, "classical.gradient_boosting")
    assert "image_classification" in row_of(lines, "vision.cnn")
    assert "…" not in "\n".join(lines)


def test_a_request_id_is_said_once() -> None:
    quoted = InvalidInput("replica refused the input (request id abc123)")
    quoted.request_id = "abc123"  # type: ignore[attr-defined]
    assert _error_line(quoted).count("abc123") == 1
    plain = InvalidInput("bad input")
    plain.request_id = "abc123"  # type: ignore[attr-defined]
    assert _error_line(plain) == "bad input (request id abc123)"


def test_the_end_of_a_training_job_names_its_model() -> None:
    job = _job(7, "train", "classical.gradient_boosting", "succeeded")
    job.outputs = {"model": "iris-gb", "model_version": 2, "accuracy": 0.97}
    assert outcome(job).endswith(", registered model iris-gb version 2")
    used = _job(8, "evaluate", "evaluate", "succeeded")
    used.outputs = {"model": "iris-gb", "model_version": 2}
    assert "registered" not in outcome(used)


def test_ranking_scores_are_not_called_probabilities() -> None:
    assert score_heading([[0.1, 0.7, 0.2], [1.0, 0.0, 0.0]]) == "probability"
    # a recommender's top-k item scores (BPR): any real numbers, not a distribution
    assert score_heading([[3.2, 2.9, 1.4], [0.4, 0.3, 0.1]]) == "top score"
