"""Parsing of client-sent JSON into typed requests, with errors a person can act on."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from aimass.errors import Unprocessable

M = TypeVar("M", bound=BaseModel)


def describe_errors(errors: Sequence[Mapping[str, Any]], skip: frozenset[str] = frozenset()) -> str:
    """One line naming each offending field (pydantic's error list) and what is wrong with it.

    ``skip`` drops location parts that mean nothing to the caller (FastAPI's ``body``).
    """
    parts = []
    for err in errors[:5]:
        loc = ".".join(str(p) for p in err.get("loc", ()) if p != "" and p not in skip)
        msg = str(err.get("msg", "invalid")).removeprefix("Value error, ")
        parts.append(f"{loc}: {msg}" if loc else msg)
    return "; ".join(parts)


def parse_json(model: type[M], text: str | bytes | None, what: str) -> M:
    """Validate JSON text (None or empty means defaults) into ``model``, or Unprocessable."""
    try:
        if not text:
            return model()
        return model.model_validate_json(text)
    except ValidationError as exc:
        raise Unprocessable(f"invalid {what}: {describe_errors(exc.errors())}") from exc
