"""One wire contract: every JSON GET route's live answer parses into the model the SDK uses.

The server and the SDK share their models (``aimass.entities``); this test keeps
them honest from the outside. It fills a fresh installation with one of each
thing, walks ``/openapi.json``, calls every ``GET /api/v1/...`` route that
answers JSON, and validates the answer with the return type of the SDK method
that reads that route. A route with no SDK method fails, unless it is in
``NOT_PARSED`` with the reason.
"""

from __future__ import annotations

import re
import typing
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import BaseModel, TypeAdapter

from aimass.client import Client
from aimass.client.datasets import Datasets
from aimass.client.deployments import Deployments
from aimass.client.jobs import Jobs
from aimass.client.models import Models
from aimass.client.pipelines import Pipelines
from aimass.client.plugins import Plugins
from aimass.client.projects import Projects
from aimass.client.schedules import Schedules
from aimass.client.tokens import Tokens
from aimass.client.zoo import Zoo
from aimass.entities.catalog import EntryInfo
from tests_support import deploy, upload

#: Route -> the SDK method that reads it; the method's return type is the wire model.
SDK: dict[str, Callable[..., Any]] = {
    "/api/v1/whoami": Client.whoami,
    "/api/v1/projects": Projects.list,
    "/api/v1/tokens": Tokens.list,
    "/api/v1/models": Models.list,
    "/api/v1/models/{name}": Models.get,
    "/api/v1/models/{name}/versions": Models.versions,
    "/api/v1/models/{name}/versions/{ref}": Models.get_version,
    "/api/v1/versions": Models.search,
    "/api/v1/models/{name}/versions/{ref}/evaluations": Models.evaluations,
    "/api/v1/models/{name}/compare": Models.compare,
    "/api/v1/datasets": Datasets.list,
    "/api/v1/datasets/{name}": Datasets.get,
    "/api/v1/datasets/{name}/versions": Datasets.versions,
    "/api/v1/datasets/{name}/versions/{version}": Datasets.get_version,
    "/api/v1/deployments": Deployments.list,
    "/api/v1/deployments/{name}": Deployments.get,
    "/api/v1/jobs": Jobs.list,
    "/api/v1/jobs/{job_id}": Jobs.get,
    "/api/v1/jobs/{job_id}/events": Jobs.events,
    "/api/v1/jobs/{job_id}/metrics": Jobs.metrics,
    "/api/v1/jobs/{job_id}/checkpoints": Jobs.checkpoints,
    "/api/v1/jobs/{job_id}/artifacts": Jobs.artifacts,
    "/api/v1/zoo": Zoo.list,
    "/api/v1/plugins": Plugins.list,
    "/api/v1/zoo/datasets": Zoo.datasets,
    "/api/v1/zoo/{name}": Zoo.get,
    "/api/v1/schedules": Schedules.list,
    "/api/v1/schedules/{name}": Schedules.get,
    "/api/v1/pipelines": Pipelines.list,
    "/api/v1/pipelines/{name}": Pipelines.get,
    "/api/v1/pipelines/{name}/runs": Pipelines.runs,
    "/api/v1/pipelines/runs/{run_id}": Pipelines.get_run,
}

#: Routes whose answer the SDK checks against a model but returns as it came.
CHECKED_ONLY: dict[str, Any] = {
    # ``client.jobs.entries()`` has always returned plain dicts; it validates each one.
    "/api/v1/jobs/entries": list[EntryInfo],
}

#: JSON routes the SDK does not parse into a model, and why.
NOT_PARSED: dict[str, str] = {
    # Plain text, or server-sent events with ``Accept: text/event-stream``;
    # ``client.jobs.logs`` returns the text and ``follow_logs`` reads the events.
    "/api/v1/jobs/{job_id}/logs": "text or SSE, not JSON",
}


def _wire_model(route: str) -> Any:
    if route in CHECKED_ONLY:
        return CHECKED_ONLY[route]
    return typing.get_type_hints(SDK[route])["return"]


def _fields(annotation: Any) -> set[str] | None:
    """The field names of the model a route answers with (its items', for a list)."""
    item = typing.get_args(annotation)[0] if typing.get_origin(annotation) is list else annotation
    if isinstance(item, type) and issubclass(item, BaseModel):
        return set(item.model_fields)
    return None


def _json_get_routes(http: httpx.Client) -> list[str]:
    spec = http.get("/openapi.json").json()
    return sorted(
        path
        for path, operations in spec["paths"].items()
        if path.startswith("/api/v1/")
        and "get" in operations
        and "application/json"
        in operations["get"].get("responses", {}).get("200", {}).get("content", {})
    )


def _fill(http: httpx.Client, live_server: Any, model_files: Any, tmp_path: Path) -> dict[str, str]:
    """One of each thing; the path params that name them, by route prefix."""
    from aimass.registry.evaluations import EvaluationCreate, record_evaluation
    from aimass.store.db import Database
    from aimass.store.orm import DatasetVersionRow

    upload(http, "m", model_files.onnx)
    csv = tmp_path / "d.csv"
    csv.write_text("a,b\n1,2\n3,4\n")
    answer = http.post("/api/v1/datasets/d/versions", files={"file": ("d.csv", csv.read_bytes())})
    assert answer.status_code == 201, answer.text
    deploy(http, {"name": "dep", "model": "m", "version": 1})
    # Jobs are off in tests: the job stays queued, which is all a read needs.
    answer = http.post("/api/v1/jobs", json={"kind": "train", "entry": "noop"})
    assert answer.status_code == 201, answer.text
    job_id = answer.json()["id"]
    job = {"kind": "train", "entry": "noop"}
    answer = http.post("/api/v1/schedules", json={"name": "s", "cron": "0 0 * * *", "job": job})
    assert answer.status_code == 201, answer.text
    steps = [{"name": "one", "job": job}]
    assert http.post("/api/v1/pipelines", json={"name": "p", "steps": steps}).status_code == 201
    answer = http.post("/api/v1/pipelines/p/runs")
    assert answer.status_code == 201, answer.text
    run_id = answer.json()["id"]
    # An evaluation only an evaluate job writes; written here through its service.
    database = Database(live_server.settings.database_url)
    try:
        with database.session() as session:
            row_id = session.query(DatasetVersionRow.id).one()[0]
            spec = EvaluationCreate(
                model="m", version=1, task="classification", metrics={"f1": 0.5}, n_rows=2
            )
            record_evaluation(session, "default", spec, lambda _s: (job_id, row_id))
    finally:
        database.close()
    zoo_entry = http.get("/api/v1/zoo").json()[0]["name"]
    return {
        "/api/v1/models/": "m",
        "/api/v1/datasets/": "d",
        "/api/v1/deployments/": "dep",
        "/api/v1/zoo/": zoo_entry,
        "/api/v1/schedules/": "s",
        "/api/v1/pipelines/": "p",
        "ref": "1",
        "version": "1",
        "job_id": str(job_id),
        "run_id": str(run_id),
    }


#: Lists only a running attempt fills (jobs are off here): their answers are empty,
#: so they are checked for their type only.
EMPTY_HERE = frozenset(
    {
        "/api/v1/jobs/{job_id}/metrics",
        "/api/v1/jobs/{job_id}/checkpoints",
        "/api/v1/jobs/{job_id}/artifacts",
    }
)

#: Required query params, by route.
QUERIES: dict[str, dict[str, str]] = {
    "/api/v1/models/{name}/compare": {"versions": "1", "dataset": "d"},
}


def _url(route: str, names: dict[str, str]) -> str:
    def value(match: re.Match[str]) -> str:
        param = match.group(1)
        if param == "name":
            prefix = next(p for p in names if p.startswith("/") and route.startswith(p))
            return names[prefix]
        return names[param]

    return re.sub(r"\{(\w+)\}", value, route)


def test_every_json_get_route_answers_what_the_sdk_parses(
    http: httpx.Client, live_server: Any, model_files: Any, tmp_path: Path
) -> None:
    names = _fill(http, live_server, model_files, tmp_path)
    routes = _json_get_routes(http)
    unmapped = [r for r in routes if r not in SDK and r not in CHECKED_ONLY and r not in NOT_PARSED]
    assert unmapped == [], "routes with no SDK model (map them in SDK, or say why in NOT_PARSED)"
    checked = 0
    for route in routes:
        if route in NOT_PARSED:
            continue
        answer = http.get(_url(route, names), params=QUERIES.get(route))
        assert answer.status_code == 200, (route, answer.text)
        body = answer.json()
        model = _wire_model(route)
        TypeAdapter(model).validate_python(body)
        fields = _fields(model)
        if fields is not None:
            items = body if isinstance(body, list) else [body]
            assert items or route in EMPTY_HERE, f"{route} answered []: the test made nothing"
            for item in items:
                assert set(item) <= fields, (route, set(item) - fields)
        checked += 1
    assert checked == len(SDK) + len(CHECKED_ONLY)


def test_every_sdk_route_is_still_served(http: httpx.Client) -> None:
    """The maps above name only routes that exist, so none goes stale."""
    routes = set(_json_get_routes(http))
    assert set(SDK) | set(CHECKED_ONLY) | set(NOT_PARSED) <= routes


@pytest.mark.parametrize("route", sorted(SDK))
def test_each_sdk_method_names_a_model(route: str) -> None:
    assert _wire_model(route) is not None
