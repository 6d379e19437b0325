"""Conditions and placeholders: data that names earlier steps' outputs, never code.

A path ``steps.<step>.outputs.<key>[.<key>...]`` walks into the outputs an
earlier step recorded (a job's outputs, or what an action did); a digit key
indexes a list. A condition compares two operands with one of six operators;
ordering needs two numbers or two strings. Nothing here calls ``eval``.
"""

from __future__ import annotations

import json
import operator
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import TypeGuard

from pydantic import JsonValue

from aimass.errors import Unprocessable
from aimass.pipelines.entities import (
    AliasMetric,
    AliasMetricOperand,
    Condition,
    LiteralOperand,
    Operand,
    Step,
)

PATH_PREFIX = "steps."
_PATH = re.compile(r"steps\.(?P<step>[A-Za-z_][A-Za-z0-9_-]{0,63})\.outputs(?P<keys>(\.[^.\s]+)+)")
_ORDER = {">": operator.gt, ">=": operator.ge, "<": operator.lt, "<=": operator.le}

#: Earlier steps' outputs by step name.
Outputs = Mapping[str, Mapping[str, JsonValue]]
#: The metric of the version an alias points at, or None when there is none.
AliasMetricReader = Callable[[AliasMetric], float | None]


@dataclass(frozen=True)
class Path:
    """A parsed ``steps.<step>.outputs.<key>...`` path."""

    step: str
    keys: tuple[str, ...]
    text: str


def parse_path(text: str, where: str) -> Path:
    """The path, or Unprocessable naming ``where`` it was written."""
    match = _PATH.fullmatch(text)
    if match is None:
        raise Unprocessable(f"{where}: {text!r} is not a path like 'steps.<step>.outputs.<key>'")
    return Path(match["step"], tuple(match["keys"].split(".")[1:]), text)


def placeholder(value: JsonValue) -> str | None:
    """The path of a ``{"from": path}`` placeholder, or None for any other value."""
    if isinstance(value, dict) and len(value) == 1 and isinstance(value.get("from"), str):
        found = value["from"]
        assert isinstance(found, str)
        return found
    return None


def _placeholders(value: JsonValue, where: str) -> Iterator[tuple[str, str]]:
    path = placeholder(value)
    if path is not None:
        yield where, path
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _placeholders(item, f"{where}.{key}")
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _placeholders(item, f"{where}.{index}")


def deferred_params(step: Step) -> frozenset[str]:
    """The job's top-level params that hold a placeholder (filled in at submit time)."""
    if step.job is None:
        return frozenset()
    return frozenset(
        key for key, value in step.job.params.items() if any(_placeholders(value, key))
    )


def _operand_paths(operand: Operand, where: str) -> Iterator[tuple[str, str]]:
    if isinstance(operand, str) and operand.startswith(PATH_PREFIX):
        yield where, operand


def references(step: Step, where: str) -> list[tuple[str, Path]]:
    """Every path the step reads, each with where it is written; malformed ones refused."""
    found: list[tuple[str, str]] = []
    if step.when is not None:
        found += _operand_paths(step.when.left, f"{where}.when.left")
        found += _operand_paths(step.when.right, f"{where}.when.right")
    if step.action is not None and step.action.version_from is not None:
        found.append((f"{where}.action.version_from", step.action.version_from))
    if step.job is not None:
        for key, value in step.job.params.items():
            found += _placeholders(value, f"{where}.job.params.{key}")
    return [(at, parse_path(text, at)) for at, text in found]


def _show(value: object) -> str:
    text = json.dumps(value, default=str)
    return text if len(text) <= 80 else text[:77] + "..."


def resolve(path: Path, outputs: Outputs) -> JsonValue:
    """The value at ``path``; Unprocessable saying which key is missing."""
    if path.step not in outputs:
        raise Unprocessable(f"{path.text}: step {path.step!r} has no outputs")
    value: JsonValue = dict(outputs[path.step])
    for key in path.keys:
        if isinstance(value, dict) and key in value:
            value = value[key]
        elif isinstance(value, list) and key.isdigit() and int(key) < len(value):
            value = value[int(key)]
        else:
            has = ", ".join(sorted(value)) if isinstance(value, dict) else _show(value)
            raise Unprocessable(f"{path.text}: no {key!r} there (found: {has or 'nothing'})")
    return value


def fill_params(params: Mapping[str, JsonValue], outputs: Outputs) -> dict[str, JsonValue]:
    """The params with every placeholder replaced by the value it names."""

    def fill(value: JsonValue, where: str) -> JsonValue:
        path = placeholder(value)
        if path is not None:
            return resolve(parse_path(path, where), outputs)
        if isinstance(value, dict):
            return {k: fill(v, f"{where}.{k}") for k, v in value.items()}
        if isinstance(value, list):
            return [fill(v, f"{where}.{i}") for i, v in enumerate(value)]
        return value

    return {key: fill(value, f"params.{key}") for key, value in params.items()}


def operand_value(
    operand: Operand, outputs: Outputs, read_alias_metric: AliasMetricReader
) -> JsonValue:
    """What an operand stands for in this run."""
    if isinstance(operand, AliasMetricOperand):
        spec = operand.alias_metric
        value = read_alias_metric(spec)
        if value is not None:
            return value
        if spec.default is None:
            raise Unprocessable(
                f"alias_metric: model {spec.model!r} has no alias {spec.alias!r} with a "
                f"{spec.metric!r} metric, and the condition gives no default"
            )
        return spec.default
    if isinstance(operand, LiteralOperand):
        return operand.value
    if isinstance(operand, str) and operand.startswith(PATH_PREFIX):
        return resolve(parse_path(operand, "when"), outputs)
    return operand


def _number(value: JsonValue) -> TypeGuard[int | float]:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def compare(left: JsonValue, op: str, right: JsonValue) -> bool:
    """``left op right``; ordering two values that are not both numbers or strings is refused."""
    if op == "==":
        return left == right
    if op == "!=":
        return left != right
    if _number(left) and _number(right):
        return bool(_ORDER[op](left, right))
    if isinstance(left, str) and isinstance(right, str):
        return bool(_ORDER[op](left, right))
    raise Unprocessable(
        f"when: cannot order {_show(left)} {op} {_show(right)}: "
        "'>', '>=', '<' and '<=' compare two numbers or two strings"
    )


def evaluate(
    condition: Condition, outputs: Outputs, read_alias_metric: AliasMetricReader
) -> tuple[bool, str]:
    """Whether the condition holds, and the comparison in words (``0.93 > 0.91``)."""
    left = operand_value(condition.left, outputs, read_alias_metric)
    right = operand_value(condition.right, outputs, read_alias_metric)
    held = compare(left, condition.op, right)
    return held, f"{_show(left)} {condition.op} {_show(right)}"
