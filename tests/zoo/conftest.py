"""Fixtures of the model-library tests: a server that runs jobs, on SQLite by default.

The zoo's tests train models, so they run on SQLite only; the store's behaviour
on PostgreSQL is tested elsewhere. A module whose test is about the store (the
catalogue's race to materialize a dataset) takes both backends back with
``from conftest import db_url``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

from conftest import sqlite_url
from jobs.conftest import api, jobs_server, wait_for
from tests_support import deploy

__all__ = ["api", "bad_params", "db_url", "evaluate", "infer", "jobs_server", "serve", "train"]


@pytest.fixture
def db_url(tmp_path: Path) -> str:
    """A fresh, migrated SQLite database URL."""
    return sqlite_url(tmp_path)


def train(
    api: httpx.Client,
    entry: str,
    params: dict[str, Any] | None = None,
    dataset: str | None = None,
    timeout: float = 60,
) -> dict[str, Any]:
    """Submit a train job of ``entry`` (on its default dataset unless given); the finished job."""
    body: dict[str, Any] = {"kind": "train", "entry": entry, "params": params or {}}
    if dataset is not None:
        body["dataset"] = dataset
    response = api.post("/api/v1/jobs", json=body)
    assert response.status_code == 201, response.text
    job = wait_for(api, response.json()["id"], timeout=timeout)
    if job["state"] != "succeeded":
        logs = api.get(f"/api/v1/jobs/{job['id']}/logs").text
        raise AssertionError(f"{entry} ended {job['state']}: {job}\n{logs[-3000:]}")
    return job


def serve(api: httpx.Client, job: dict[str, Any], name: str) -> str:
    """Deploy the version the job registered, as deployment ``name``."""
    outputs = job["outputs"]
    deploy(api, {"name": name, "model": outputs["model"], "version": outputs["model_version"]})
    return name


def infer(api: httpx.Client, deployment: str, inputs: list[dict[str, Any]]) -> dict[str, Any]:
    """POST an Open Inference Protocol request; the answer's outputs by name."""
    response = api.post(f"/v2/models/{deployment}/infer", json={"inputs": inputs})
    assert response.status_code == 200, response.text
    return {o["name"]: o for o in response.json()["outputs"]}


def evaluate(api: httpx.Client, job: dict[str, Any], dataset: str) -> dict[str, Any]:
    """Run the ``evaluate`` entry on ``dataset`` with the version the train ``job`` registered.

    It must succeed (else the failure shows its log); the metrics it reported.
    """
    outputs = job["outputs"]
    response = api.post(
        "/api/v1/jobs",
        json={
            "kind": "evaluate",
            "entry": "evaluate",
            "params": {"model": outputs["model"], "version": str(outputs["model_version"])},
            "dataset": dataset,
        },
    )
    assert response.status_code == 201, response.text
    done = wait_for(api, response.json()["id"])
    assert done["state"] == "succeeded", (done, api.get(f"/api/v1/jobs/{done['id']}/logs").text)
    metrics: dict[str, Any] = done["outputs"]["metrics"]
    return metrics


def bad_params(api: httpx.Client, entry: str, params: dict[str, Any]) -> str:
    """Submit a train job with bad params: it must be refused with 422; the error message."""
    response = api.post("/api/v1/jobs", json={"kind": "train", "entry": entry, "params": params})
    assert response.status_code == 422, response.text
    message: str = response.json()["error"]["message"]
    return message
