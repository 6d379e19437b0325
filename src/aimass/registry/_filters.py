"""SQL filters for model and version search."""

from __future__ import annotations

import operator
import re
from collections.abc import Callable
from typing import Any

from sqlalchemy import ColumnElement, and_, exists, select

from aimass.errors import InvalidInput
from aimass.store.orm import (
    AliasRow,
    ModelRow,
    ModelTagRow,
    ModelVersionMetricRow,
    ModelVersionRow,
    ModelVersionTagRow,
)

_METRIC = re.compile(r"\s*([A-Za-z0-9_.\-/]+)\s*(>=|<=|==|=|>|<)\s*([-+0-9.eE]+|inf|-inf)\s*")
_OPS: dict[str, Callable[[Any, Any], Any]] = {
    ">": operator.gt,
    ">=": operator.ge,
    "<": operator.lt,
    "<=": operator.le,
    "=": operator.eq,
    "==": operator.eq,
}


def parse_tag(text: str) -> tuple[str, str]:
    """'key=value' into a pair."""
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise InvalidInput(f"invalid tag filter {text!r}: use key=value")
    return key, value


def parse_metric(text: str) -> tuple[str, str, float]:
    """'accuracy>=0.9' into (name, op, value)."""
    match = _METRIC.fullmatch(text)
    if not match:
        raise InvalidInput(
            f"invalid metric filter {text!r}: use NAME OP VALUE with OP one of > >= < <= ="
        )
    try:
        value = float(match.group(3))
    except ValueError as exc:
        raise InvalidInput(f"invalid metric filter {text!r}: value is not a number") from exc
    return match.group(1), match.group(2), value


def like_escaped(text: str) -> str:
    """A LIKE pattern matching ``text`` anywhere, with wildcards in it taken literally."""
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def name_contains(text: str) -> ColumnElement[bool]:
    """Model name contains ``text`` (case-insensitive)."""
    return ModelRow.name.ilike(like_escaped(text), escape="\\")


def model_has_tag(key: str, value: str) -> ColumnElement[bool]:
    """The model carries tag key=value."""
    return exists(
        select(ModelTagRow.model_id).where(
            and_(ModelTagRow.model_id == ModelRow.id, ModelTagRow.key == key),
            ModelTagRow.value == value,
        )
    )


def version_has_tag(key: str, value: str) -> ColumnElement[bool]:
    """The version carries tag key=value."""
    return exists(
        select(ModelVersionTagRow.version_id).where(
            ModelVersionTagRow.version_id == ModelVersionRow.id,
            ModelVersionTagRow.key == key,
            ModelVersionTagRow.value == value,
        )
    )


def version_metric(text: str) -> ColumnElement[bool]:
    """The version has a metric satisfying 'NAME OP VALUE'."""
    name, op, value = parse_metric(text)
    return exists(
        select(ModelVersionMetricRow.version_id).where(
            ModelVersionMetricRow.version_id == ModelVersionRow.id,
            ModelVersionMetricRow.key == name,
            _OPS[op](ModelVersionMetricRow.value, value),
        )
    )


def version_has_alias(alias: str) -> ColumnElement[bool]:
    """An alias of that name points at the version."""
    return exists(
        select(AliasRow.model_id).where(
            AliasRow.version_id == ModelVersionRow.id, AliasRow.name == alias
        )
    )
