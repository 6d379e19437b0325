"""Conditions and placeholders are data: paths, comparisons and alias metrics, no eval."""

from __future__ import annotations

import pytest
from pydantic import JsonValue

from aimass.errors import Unprocessable
from aimass.pipelines.conditions import (
    AliasMetricReader,
    evaluate,
    fill_params,
    parse_path,
    resolve,
)
from aimass.pipelines.entities import AliasMetric, Condition

OUTPUTS: dict[str, dict[str, JsonValue]] = {
    "train": {"model_version": 3, "name": "iris"},
    "evaluate": {"metrics": {"f1": 0.93, "per_class": [0.9, 0.95]}},
}


def _metrics(values: dict[tuple[str, str, str], float]) -> AliasMetricReader:
    def read(spec: AliasMetric) -> float | None:
        return values.get((spec.model, spec.alias, spec.metric))

    return read


def _when(left: object, op: str, right: object) -> Condition:
    return Condition.model_validate({"left": left, "op": op, "right": right})


def test_paths_walk_into_outputs_and_lists() -> None:
    assert resolve(parse_path("steps.evaluate.outputs.metrics.f1", "x"), OUTPUTS) == 0.93
    assert resolve(parse_path("steps.evaluate.outputs.metrics.per_class.1", "x"), OUTPUTS) == 0.95
    with pytest.raises(Unprocessable, match="no 'recall' there"):
        resolve(parse_path("steps.evaluate.outputs.metrics.recall", "x"), OUTPUTS)
    with pytest.raises(Unprocessable, match="step 'deploy' has no outputs"):
        resolve(parse_path("steps.deploy.outputs.x", "x"), OUTPUTS)
    for bad in ("steps.train", "steps.train.outputs", "steps..outputs.x", "train.outputs.x"):
        with pytest.raises(Unprocessable, match=r"when\.left: .* is not a path"):
            parse_path(bad, "when.left")


@pytest.mark.parametrize(
    ("left", "op", "right", "held"),
    [
        ("steps.evaluate.outputs.metrics.f1", ">", 0.9, True),
        ("steps.evaluate.outputs.metrics.f1", "<=", 0.9, False),
        ("steps.evaluate.outputs.metrics.f1", ">=", 0.93, True),
        ("steps.train.outputs.model_version", "==", 3, True),
        ("steps.train.outputs.model_version", "!=", 3, False),
        ("steps.train.outputs.name", "==", "iris", True),
        ("steps.train.outputs.name", "<", "zebra", True),
        ({"value": "steps.train.outputs.name"}, "==", "steps.train.outputs.name", False),
    ],
)
def test_comparisons(left: object, op: str, right: object, held: bool) -> None:
    result, words = evaluate(_when(left, op, right), OUTPUTS, _metrics({}))
    assert result is held
    assert op in words


def test_alias_metric_reads_the_aliased_version_or_its_default() -> None:
    condition = _when(
        "steps.evaluate.outputs.metrics.f1",
        ">",
        {"alias_metric": {"model": "iris", "alias": "production", "metric": "f1", "default": 0}},
    )
    better = _metrics({("iris", "production", "f1"): 0.91})
    worse = _metrics({("iris", "production", "f1"): 0.97})
    assert evaluate(condition, OUTPUTS, better)[0] is True
    held, words = evaluate(condition, OUTPUTS, worse)
    assert held is False and words == "0.93 > 0.97"
    assert evaluate(condition, OUTPUTS, _metrics({}))[0] is True
    strict = _when(
        "steps.evaluate.outputs.metrics.f1",
        ">",
        {"alias_metric": {"model": "iris", "alias": "production", "metric": "f1"}},
    )
    with pytest.raises(Unprocessable, match="no default"):
        evaluate(strict, OUTPUTS, _metrics({}))


def test_ordering_needs_two_numbers_or_two_strings() -> None:
    with pytest.raises(Unprocessable, match="cannot order"):
        evaluate(_when("steps.train.outputs.name", ">", 1), OUTPUTS, _metrics({}))
    with pytest.raises(Unprocessable, match="cannot order"):
        evaluate(_when(True, ">", 0), OUTPUTS, _metrics({}))


def test_a_condition_is_never_run_as_code() -> None:
    hostile = "__import__('os').system('touch /tmp/pwned')"
    held, _ = evaluate(_when(hostile, "==", hostile), OUTPUTS, _metrics({}))
    assert held is True  # compared as the literal string it is
    with pytest.raises(Unprocessable, match="not a path"):
        evaluate(_when("steps.__class__", "==", 1), OUTPUTS, _metrics({}))


def test_placeholders_fill_params_at_any_depth() -> None:
    params: dict[str, JsonValue] = {
        "model_version": {"from": "steps.train.outputs.model_version"},
        "nested": {"list": [{"from": "steps.evaluate.outputs.metrics.f1"}, 1]},
        "plain": {"from": 3},
    }
    assert fill_params(params, OUTPUTS) == {
        "model_version": 3,
        "nested": {"list": [0.93, 1]},
        "plain": {"from": 3},
    }
    with pytest.raises(Unprocessable, match=r"params\.x: .steps\.nope. is not a path"):
        fill_params({"x": {"from": "steps.nope"}}, OUTPUTS)
