"""Parsing of client-sent JSON into typed requests, with errors a person can act on."""

from __future__ import annotations

from typing import TypeVar

from pydantic import BaseModel, ValidationError

from aimass.errors import Unprocessable

M = TypeVar("M", bound=BaseModel)


def describe_validation_error(exc: ValidationError, prefix: str = "") -> str:
    """One line naming each offending field and what is wrong with it."""
    parts = []
    for err in exc.errors()[:5]:
        loc = ".".join(str(p) for p in (prefix, *err["loc"]) if p != "")
        msg = err["msg"].removeprefix("Value error, ")
        parts.append(f"{loc}: {msg}" if loc else msg)
    return "; ".join(parts)


def parse_json(model: type[M], text: str | bytes | None, what: str) -> M:
    """Validate JSON text (None or empty means defaults) into ``model``, or Unprocessable."""
    try:
        if not text:
            return model()
        return model.model_validate_json(text)
    except ValidationError as exc:
        raise Unprocessable(f"invalid {what}: {describe_validation_error(exc)}") from exc
