"""Helpers shared by API tests (imported as ``tests_support``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx


def upload(
    http: httpx.Client,
    name: str,
    path: Path,
    meta: dict[str, Any] | None = None,
    filename: str | None = None,
    expect: int = 201,
) -> dict[str, Any]:
    """Upload a model file as a new version and check the status code."""
    with path.open("rb") as src:
        response = http.post(
            f"/api/v1/models/{name}/versions",
            files={"file": (filename or path.name, src)},
            data={"meta": json.dumps(meta or {})},
        )
    assert response.status_code == expect, response.text
    body: dict[str, Any] = response.json()
    return body
