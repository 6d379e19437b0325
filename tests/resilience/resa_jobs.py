"""Helpers for the fault tests' script jobs (database outage, full disk, large writes)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx

from jobs.conftest import wait_for

SCRIPTS = Path(__file__).parent / "scripts"
#: Polls a job until it ends (or ``until`` holds), asking again through 503s.
wait_job = wait_for


def submit_script(
    api: httpx.Client, script: str, params: dict[str, Any], source: bytes | None = None
) -> dict[str, Any]:
    """Submit ``scripts/<script>``'s ``main`` as a script job (``source`` replaces its text)."""
    body = {"kind": "script", "entry": f"{script}:main", "params": params}
    response = api.post(
        "/api/v1/jobs/script",
        files={"source": (script, source or (SCRIPTS / script).read_bytes(), "text/x-python")},
        data={"spec": json.dumps(body)},
    )
    assert response.status_code == 201, response.text
    job: dict[str, Any] = response.json()
    return job
