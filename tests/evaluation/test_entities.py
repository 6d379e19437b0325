"""Comparing reports side by side: the table, the best version per metric, bad input."""

from __future__ import annotations

import pytest

from aimass.errors import Unprocessable
from aimass.evaluation import EvaluationReport, compare_reports


def _report(task: str = "regression", **metrics: float) -> EvaluationReport:
    return EvaluationReport.model_validate({"task": task, "metrics": metrics, "n_rows": 10})


def test_comparison_table_and_best_versions() -> None:
    comparison = compare_reports(
        [
            ("diabetes", 1, _report(rmse=60.0, mae=50.0, r2=0.30)),
            ("diabetes", 2, _report(rmse=55.0, mae=52.0, r2=0.45)),
            ("ridge", 1, _report(rmse=57.0, mae=49.0)),
        ]
    )

    assert comparison.task == "regression"
    assert [(row.model, row.version) for row in comparison.versions] == [
        ("diabetes", 1),
        ("diabetes", 2),
        ("ridge", 1),
    ]
    assert comparison.table == {
        "rmse": {"diabetes:v1": 60.0, "diabetes:v2": 55.0, "ridge:v1": 57.0},
        "mae": {"diabetes:v1": 50.0, "diabetes:v2": 52.0, "ridge:v1": 49.0},
        "r2": {"diabetes:v1": 0.30, "diabetes:v2": 0.45},
    }
    # rmse and mae are errors (lower is better); r2 is better higher.
    assert comparison.best == {"rmse": "diabetes:v2", "mae": "ridge:v1", "r2": "diabetes:v2"}


def test_a_tie_goes_to_the_version_listed_first() -> None:
    comparison = compare_reports(
        [
            ("iris", 3, _report("classification", accuracy=0.9, log_loss=0.2)),
            ("iris", 1, _report("classification", accuracy=0.9, log_loss=0.2)),
        ]
    )

    assert comparison.best == {"accuracy": "iris:v3", "log_loss": "iris:v3"}


def test_comparison_round_trips_as_json() -> None:
    comparison = compare_reports([("iris", 1, _report("classification", accuracy=1.0))])

    assert type(comparison).model_validate_json(comparison.model_dump_json()) == comparison


@pytest.mark.parametrize(
    ("named", "message"),
    [
        ([], "there are no reports to compare"),
        (
            [("a", 1, _report("regression", rmse=1.0)), ("a", 2, _report("ranking"))],
            "different tasks: ranking, regression",
        ),
        (
            [("a", 1, _report(rmse=1.0)), ("a", 1, _report(rmse=2.0))],
            "repeated: a:v1",
        ),
    ],
)
def test_bad_comparisons_are_unprocessable(
    named: list[tuple[str, int, EvaluationReport]], message: str
) -> None:
    with pytest.raises(Unprocessable, match=message):
        compare_reports(named)
