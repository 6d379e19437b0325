"""One wire contract: every JSON route's live answer parses into the shared wire model.

The server and the SDK share their models (``aimass.entities``). This test
walks the whole OpenAPI document, reads and writes alike: it calls every
operation once against a live server, in an order that fills a fresh
installation (upload, deploy, submit, run an attempt, then change and delete),
and checks each answer three ways: the status, the model the SDK method that
calls the route returns (or, for routes only ``aimass.runtime`` or other
clients call, the wire model named in ``WIRE``), and that the document declares
that same model. An operation in the document that no step calls fails the
test, unless ``NOT_JSON`` says why its answer is not JSON.
"""

from __future__ import annotations

import io
import json
import sys
import time
import typing
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from fastapi.routing import APIRoute
from pydantic import BaseModel, TypeAdapter

from aimass.api.app import create_app
from aimass.api.ui import UI_ROUTES
from aimass.auth.service import create_job_token
from aimass.client import Client
from aimass.client.datasets import Datasets
from aimass.client.deployments import Deployments
from aimass.client.jobs import Jobs
from aimass.client.models import Models
from aimass.client.monitoring import Monitoring
from aimass.client.pipelines import Pipelines
from aimass.client.plugins import Plugins
from aimass.client.projects import Projects
from aimass.client.schedules import Schedules
from aimass.client.tokens import Tokens
from aimass.client.zoo import Zoo
from aimass.entities.catalog import EntryInfo
from aimass.entities.evaluation import Evaluation
from aimass.entities.inference import InferResponse, ModelMetadata, ServerMetadata
from aimass.entities.jobs import (
    AttemptLease,
    JobArtifact,
    JobCheckpoint,
    JobOutputs,
    LogsAppended,
    MetricsRecorded,
)
from aimass.entities.openai import Completion, EmbeddingList, OpenAIModel, OpenAIModelList
from aimass.jobs import service
from aimass.platform import Platform
from aimass.store.db import Database
from tests_support import deploy, upload, wait_state

#: Operation -> the SDK method that calls it; the method's return type is the wire model.
SDK: dict[str, Callable[..., Any]] = {
    "GET /api/v1/whoami": Client.whoami,
    "GET /api/v1/projects": Projects.list,
    "POST /api/v1/projects": Projects.create,
    "GET /api/v1/tokens": Tokens.list,
    "POST /api/v1/tokens": Tokens.create,
    "DELETE /api/v1/tokens/{token_id}": Tokens.revoke,
    "POST /api/v1/models": Models.create,
    "GET /api/v1/models": Models.list,
    "GET /api/v1/models/{name}": Models.get,
    "PATCH /api/v1/models/{name}": Models.update,
    "DELETE /api/v1/models/{name}": Models.delete,
    "POST /api/v1/models/{name}/versions": Models.upload,
    "GET /api/v1/models/{name}/versions": Models.versions,
    "GET /api/v1/models/{name}/versions/{ref}": Models.get_version,
    "PATCH /api/v1/models/{name}/versions/{ref}": Models.update_version,
    "DELETE /api/v1/models/{name}/versions/{ref}": Models.delete_version,
    "PUT /api/v1/models/{name}/aliases/{alias}": Models.set_alias,
    "DELETE /api/v1/models/{name}/aliases/{alias}": Models.delete_alias,
    "GET /api/v1/versions": Models.search,
    "POST /api/v1/bundles": Models.import_bundle,
    "GET /api/v1/models/{name}/versions/{ref}/evaluations": Models.evaluations,
    "GET /api/v1/models/{name}/compare": Models.compare,
    "POST /api/v1/datasets/{name}/versions": Datasets.upload,
    "GET /api/v1/datasets": Datasets.list,
    "GET /api/v1/datasets/{name}": Datasets.get,
    "DELETE /api/v1/datasets/{name}": Datasets.delete,
    "GET /api/v1/datasets/{name}/versions": Datasets.versions,
    "GET /api/v1/datasets/{name}/versions/{version}": Datasets.get_version,
    "POST /api/v1/deployments": Deployments.create,
    "GET /api/v1/deployments": Deployments.list,
    "GET /api/v1/deployments/{name}": Deployments.get,
    "PATCH /api/v1/deployments/{name}": Deployments.update,
    "DELETE /api/v1/deployments/{name}": Deployments.delete,
    "POST /api/v1/deployments/{name}/predict": Deployments.predict,
    "POST /api/v1/jobs": Jobs.submit,
    "POST /api/v1/jobs/script": Jobs.submit_script,
    "GET /api/v1/jobs": Jobs.list,
    "GET /api/v1/jobs/{job_id}": Jobs.get,
    "GET /api/v1/jobs/{job_id}/events": Jobs.events,
    "GET /api/v1/jobs/{job_id}/metrics": Jobs.metrics,
    "GET /api/v1/jobs/{job_id}/checkpoints": Jobs.checkpoints,
    "GET /api/v1/jobs/{job_id}/artifacts": Jobs.artifacts,
    "POST /api/v1/jobs/{job_id}/cancel": Jobs.cancel,
    "POST /api/v1/jobs/{job_id}/retry": Jobs.retry,
    "GET /api/v1/zoo": Zoo.list,
    "GET /api/v1/plugins": Plugins.list,
    "GET /api/v1/nodes": Monitoring.nodes,
    "GET /api/v1/monitoring/alerts": Monitoring.alerts,
    "GET /api/v1/nodes/{node}/history": Monitoring.node_history,
    "GET /api/v1/zoo/datasets": Zoo.datasets,
    "POST /api/v1/zoo/datasets/{name}": Zoo.materialize,
    "GET /api/v1/zoo/{name}": Zoo.get,
    "POST /api/v1/schedules": Schedules.create,
    "GET /api/v1/schedules": Schedules.list,
    "GET /api/v1/schedules/{name}": Schedules.get,
    "PATCH /api/v1/schedules/{name}": Schedules.update,
    "DELETE /api/v1/schedules/{name}": Schedules.delete,
    "POST /api/v1/pipelines": Pipelines.apply,
    "GET /api/v1/pipelines": Pipelines.list,
    "GET /api/v1/pipelines/{name}": Pipelines.get,
    "DELETE /api/v1/pipelines/{name}": Pipelines.delete,
    "POST /api/v1/pipelines/{name}/runs": Pipelines.run,
    "GET /api/v1/pipelines/{name}/runs": Pipelines.runs,
    "GET /api/v1/pipelines/runs/{run_id}": Pipelines.get_run,
    "POST /api/v1/pipelines/runs/{run_id}/cancel": Pipelines.cancel_run,
}

#: Operations no SDK method calls: ``aimass.runtime`` (a job's attempt) and
#: OIP clients (tritonclient, KServe's) call them; their wire models.
WIRE: dict[str, Any] = {
    # ``client.jobs.entries()`` returns plain dicts, each validated as an EntryInfo.
    "GET /api/v1/jobs/entries": list[EntryInfo],
    "POST /api/v1/jobs/{job_id}/attempts/{attempt}/heartbeat": AttemptLease,
    "POST /api/v1/jobs/{job_id}/attempts/{attempt}/metrics": MetricsRecorded,
    "POST /api/v1/jobs/{job_id}/attempts/{attempt}/outputs": JobOutputs,
    "PUT /api/v1/jobs/{job_id}/attempts/{attempt}/checkpoint": JobCheckpoint,
    "POST /api/v1/jobs/{job_id}/attempts/{attempt}/artifacts/{name}": JobArtifact,
    "POST /api/v1/jobs/{job_id}/attempts/{attempt}/logs": LogsAppended,
    "POST /api/v1/jobs/{job_id}/attempts/{attempt}/evaluations": Evaluation,
    "GET /v2": ServerMetadata,
    # The OpenAI-compatible routes; the openai client calls them.
    "GET /v1/models": OpenAIModelList,
    "GET /v1/models/{name}": OpenAIModel,
    "POST /v1/embeddings": EmbeddingList,
    "POST /v1/chat/completions": Completion,
    "POST /v1/completions": Completion,
    "GET /v2/models/{name}": ModelMetadata,
    "GET /v2/models/{name}/versions/{version}": ModelMetadata,
    "POST /v2/models/{name}/infer": InferResponse,
    "POST /v2/models/{name}/versions/{version}/infer": InferResponse,
    # Health and readiness answer 200 with an empty body.
    "GET /v2/health/live": None,
    "GET /v2/health/ready": None,
    "GET /v2/models/{name}/ready": None,
    "GET /v2/models/{name}/versions/{version}/ready": None,
}

#: Operations whose answer is not JSON, and what it is instead. Nothing else may be left out.
NOT_JSON: dict[str, str] = {
    # File downloads: the bytes, as an attachment (the SDK streams them to a file).
    "GET /api/v1/models/{name}/versions/{ref}/download": "a model file",
    "GET /api/v1/models/{name}/versions/{ref}/bundle": "a bundle file",
    "GET /api/v1/datasets/{name}/versions/{version}/download": "a dataset file",
    "GET /api/v1/jobs/{job_id}/checkpoints/latest": "a checkpoint's bytes",
    "GET /api/v1/jobs/{job_id}/source": "a script job's code",
    "GET /api/v1/jobs/{job_id}/artifacts/{name}": "an artifact's bytes",
    # Plain text, or server-sent events with ?follow=true.
    "GET /api/v1/jobs/{job_id}/logs": "text/plain or text/event-stream",
    # Prometheus' text exposition format.
    "GET /metrics": "text/plain",
}


#: Monitoring operations that need logged traffic, a drift window or the server's system log,
#: which this server (prediction logging off, started in-process) does not have. The named
#: module calls each through the SDK, which parses its answer into the same wire model.
ELSEWHERE: dict[str, str] = {
    "GET /api/v1/deployments/{name}/predictions": "tests/monitoring/test_drift_e2e.py",
    "POST /api/v1/deployments/{name}/predictions/export": "tests/monitoring/test_drift_e2e.py",
    "GET /api/v1/deployments/{name}/drift": "tests/monitoring/test_drift_e2e.py",
    "POST /api/v1/deployments/{name}/feedback": "tests/monitoring/test_drift_e2e.py",
    "GET /api/v1/deployments/{name}/quality": "tests/monitoring/test_drift_e2e.py",
    "GET /api/v1/monitoring/events": "tests/monitoring/test_drift_e2e.py",
    "GET /api/v1/logs": "tests/monitoring/test_system_log.py",
    # A transformers deployment (the llm extra, a model loaded): the openai client there.
    "GET /v1/models/{name}": "tests/llm/test_llm_serving.py",
    "POST /v1/embeddings": "tests/llm/test_llm_serving.py",
    "POST /v1/chat/completions": "tests/llm/test_llm_serving.py",
    "POST /v1/completions": "tests/llm/test_llm_serving.py",
}


def _return_type(method: Callable[..., Any]) -> Any:
    """The return annotation of an SDK method (its parameters may name types only mypy sees)."""

    def holder() -> None: ...

    holder.__annotations__ = {"return": method.__annotations__["return"]}
    module = vars(sys.modules[method.__module__])
    return typing.get_type_hints(holder, globalns=module)["return"]


def _model_of(operation: str) -> Any:
    if operation in WIRE:
        return WIRE[operation]
    answer = _return_type(SDK[operation])
    return None if answer is type(None) else answer


def _operations(document: dict[str, Any]) -> set[str]:
    return {
        f"{method.upper()} {path}"
        for path, operations in document["paths"].items()
        for method in operations
    }


def _declared(document: dict[str, Any], operation: str) -> tuple[str, dict[str, Any] | None]:
    """The success status and JSON schema the document declares for ``operation``."""
    method, path = operation.split(" ", 1)
    responses = document["paths"][path][method.lower()]["responses"]
    status = next(code for code in responses if code.startswith("2"))
    content = responses[status].get("content") or {}
    return status, content.get("application/json", {}).get("schema")


def _schema_name(annotation: Any) -> str | None:
    """The component name a model (or a list of models) has in the document."""
    item = typing.get_args(annotation)[0] if typing.get_origin(annotation) is list else annotation
    return item.__name__ if isinstance(item, type) and issubclass(item, BaseModel) else None


def _referenced(schema: dict[str, Any] | None) -> str | None:
    if not schema:
        return None
    ref = schema.get("$ref") or schema.get("items", {}).get("$ref")
    return ref.rsplit("/", 1)[-1] if ref else None


@dataclass
class Calls:
    """Sends each operation once, checking its answer against the wire contract."""

    http: httpx.Client
    document: dict[str, Any]
    done: set[str] = field(default_factory=set)

    def __call__(
        self, operation: str, url: str, client: httpx.Client | None = None, **kwargs: Any
    ) -> Any:
        method, _ = operation.split(" ", 1)
        answer = (client or self.http).request(method, url, **kwargs)
        status, schema = _declared(self.document, operation)
        assert answer.status_code == int(status), (operation, answer.status_code, answer.text)
        self.done.add(operation)
        model = _model_of(operation)
        if model is None:
            assert answer.content == b"", (operation, answer.text)
            return None
        assert _referenced(schema) == _schema_name(model), (operation, schema, model)
        body = answer.json()
        TypeAdapter(model).validate_python(body)
        name = _schema_name(model)
        if name is not None:
            fields = set(
                (typing.get_args(model)[0] if isinstance(body, list) else model).model_fields
            )
            items = body if isinstance(body, list) else [body]
            assert items, f"{operation} answered []: the test made nothing to list"
            for item in items:
                assert set(item) <= fields, (operation, set(item) - fields)
        return body


def _bundle_of(http: httpx.Client) -> bytes:
    answer = http.get("/api/v1/models/m/versions/1/bundle")
    assert answer.status_code == 200, answer.text
    assert zipfile.is_zipfile(io.BytesIO(answer.content))
    return answer.content


def _infer_body(metadata: dict[str, Any], row: list[float]) -> dict[str, Any]:
    spec = metadata["inputs"][0]
    return {
        "inputs": [{"name": spec["name"], "shape": [1, len(row)], "datatype": "FP32", "data": row}]
    }


@pytest.fixture
def database(live_server: Any) -> Iterator[Database]:
    """The live server's database, to start an attempt as the scheduler would (jobs are off)."""
    db = Database(live_server.settings.database_url)
    yield db
    db.close()


def test_every_route_answers_its_wire_model(
    http: httpx.Client, live_server: Any, database: Database, model_files: Any, tmp_path: Path
) -> None:
    document = http.get("/openapi.json").json()
    call = Calls(http, document)
    row = [float(v) for v in model_files.x[0]]

    # Access.
    call("GET /api/v1/whoami", "/api/v1/whoami")
    call("POST /api/v1/projects", "/api/v1/projects", json={"name": "other"})
    call("GET /api/v1/projects", "/api/v1/projects")
    made = call("POST /api/v1/tokens", "/api/v1/tokens", json={"name": "ci", "role": "viewer"})
    call("GET /api/v1/tokens", "/api/v1/tokens")

    # Models, versions, aliases, bundles.
    call("POST /api/v1/models", "/api/v1/models", json={"name": "gone"})
    with model_files.onnx.open("rb") as file:
        files = {"file": ("model.onnx", file)}
        call("POST /api/v1/models/{name}/versions", "/api/v1/models/m/versions", files=files)
    upload(http, "m", model_files.onnx)
    call("GET /api/v1/models", "/api/v1/models")
    call("GET /api/v1/models/{name}", "/api/v1/models/m")
    call("PATCH /api/v1/models/{name}", "/api/v1/models/m", json={"description": "breast cancer"})
    call("GET /api/v1/models/{name}/versions", "/api/v1/models/m/versions")
    call("GET /api/v1/models/{name}/versions/{ref}", "/api/v1/models/m/versions/1")
    change = {"tags": {"stage": "test"}}
    call("PATCH /api/v1/models/{name}/versions/{ref}", "/api/v1/models/m/versions/1", json=change)
    alias = "/api/v1/models/m/aliases/production"
    call("PUT /api/v1/models/{name}/aliases/{alias}", alias, json={"version": 1})
    call("GET /api/v1/versions", "/api/v1/versions", params={"alias": "production"})
    bundle = {"file": ("m.aimass", _bundle_of(http))}
    meta = {"meta": json.dumps({"name": "copy"})}
    call("POST /api/v1/bundles", "/api/v1/bundles", files=bundle, data=meta)

    # Datasets and the model library.
    csv = b"a,b\n1,2\n3,4\n"
    files = {"file": ("d.csv", csv)}
    call("POST /api/v1/datasets/{name}/versions", "/api/v1/datasets/d/versions", files=files)
    upload_gone = {"file": ("e.csv", csv)}
    assert http.post("/api/v1/datasets/e/versions", files=upload_gone).status_code == 201
    call("GET /api/v1/datasets", "/api/v1/datasets")
    call("GET /api/v1/datasets/{name}", "/api/v1/datasets/d")
    call("GET /api/v1/datasets/{name}/versions", "/api/v1/datasets/d/versions")
    call("GET /api/v1/datasets/{name}/versions/{version}", "/api/v1/datasets/d/versions/1")
    zoo = call("GET /api/v1/zoo", "/api/v1/zoo")
    call("GET /api/v1/plugins", "/api/v1/plugins")
    # The node monitor samples this machine every few seconds from the start.
    deadline = time.monotonic() + 30
    while not http.get("/api/v1/nodes").json() and time.monotonic() < deadline:
        time.sleep(0.5)
    nodes = call("GET /api/v1/nodes", "/api/v1/nodes")
    call("GET /api/v1/monitoring/alerts", "/api/v1/monitoring/alerts")
    call("GET /api/v1/nodes/{node}/history", f"/api/v1/nodes/{nodes[0]['node']}/history")
    call("GET /api/v1/zoo/{name}", f"/api/v1/zoo/{zoo[0]['name']}")
    builtin = call("GET /api/v1/zoo/datasets", "/api/v1/zoo/datasets")
    iris = next(d["name"] for d in builtin if d["name"] == "iris")
    call("POST /api/v1/zoo/datasets/{name}", f"/api/v1/zoo/datasets/{iris}")

    # Deployments and inference.
    dep = {"name": "dep", "model": "m", "version": 1}
    call("POST /api/v1/deployments", "/api/v1/deployments", json=dep)
    deploy(http, {"name": "dep2", "model": "m", "version": 2})
    wait_state(http, "dep", "ready")
    call("GET /api/v1/deployments", "/api/v1/deployments")
    call("GET /api/v1/deployments/{name}", "/api/v1/deployments/dep")
    predict = {"inputs": [row]}
    call("POST /api/v1/deployments/{name}/predict", "/api/v1/deployments/dep/predict", json=predict)
    call("GET /v2/health/live", "/v2/health/live")
    call("GET /v2/health/ready", "/v2/health/ready")
    call("GET /v2", "/v2")
    call("GET /v1/models", "/v1/models")  # none here: no transformers deployment
    metadata = call("GET /v2/models/{name}", "/v2/models/dep")
    call("GET /v2/models/{name}/ready", "/v2/models/dep/ready")
    call("GET /v2/models/{name}/versions/{version}", "/v2/models/dep/versions/1")
    call("GET /v2/models/{name}/versions/{version}/ready", "/v2/models/dep/versions/1/ready")
    infer = _infer_body(metadata, row)
    call("POST /v2/models/{name}/infer", "/v2/models/dep/infer", json=infer)
    call(
        "POST /v2/models/{name}/versions/{version}/infer",
        "/v2/models/dep/versions/1/infer",
        json=infer,
    )
    call("PATCH /api/v1/deployments/{name}", "/api/v1/deployments/dep2", json={"replicas": 1})

    # Jobs (no scheduler runs here: an attempt is started as the scheduler would).
    job = {"kind": "train", "entry": "noop", "dataset": "d"}
    submitted = call("POST /api/v1/jobs", "/api/v1/jobs", json=job)
    job_id = submitted["id"]
    script = {"spec": json.dumps({"kind": "script", "entry": "train.py:main"})}
    source = {"source": ("train.py", b"def main():\n    return {}\n")}
    other = call("POST /api/v1/jobs/script", "/api/v1/jobs/script", data=script, files=source)
    call("GET /api/v1/jobs/entries", "/api/v1/jobs/entries")
    call("POST /api/v1/jobs/{job_id}/cancel", f"/api/v1/jobs/{other['id']}/cancel")
    call("POST /api/v1/jobs/{job_id}/retry", f"/api/v1/jobs/{other['id']}/retry")
    with database.session() as session:
        attempt = service.start_attempt(session, job_id, "node-a", 30.0).attempt
        secret = create_job_token(session, job_id, attempt, "default")
    base = f"/api/v1/jobs/{job_id}/attempts/{attempt}"
    runtime = {"Authorization": f"Bearer {secret}"}
    with httpx.Client(base_url=live_server.url, headers=runtime, timeout=60) as job_http:
        prefix = "POST /api/v1/jobs/{job_id}/attempts/{attempt}"
        call(f"{prefix}/heartbeat", f"{base}/heartbeat", job_http)
        points = {"metrics": [{"name": "loss", "value": 0.5, "step": 1}]}
        call(f"{prefix}/metrics", f"{base}/metrics", job_http, json=points)
        call(f"{prefix}/outputs", f"{base}/outputs", job_http, json={"accuracy": 0.9})
        call(
            "PUT /api/v1/jobs/{job_id}/attempts/{attempt}/checkpoint",
            f"{base}/checkpoint",
            job_http,
            params={"step": 1},
            content=b"state",
        )
        call(
            f"{prefix}/artifacts/{{name}}", f"{base}/artifacts/report.txt", job_http, content=b"ok"
        )
        call(f"{prefix}/logs", f"{base}/logs", job_http, content=b"a shipped line\n")
        report = {"model": "m", "version": 1, "task": "classification", "metrics": {"f1": 0.5}}
        report["n_rows"] = 2
        call(f"{prefix}/evaluations", f"{base}/evaluations", job_http, json=report)
    call("GET /api/v1/jobs", "/api/v1/jobs")
    call("GET /api/v1/jobs/{job_id}", f"/api/v1/jobs/{job_id}")
    call("GET /api/v1/jobs/{job_id}/events", f"/api/v1/jobs/{job_id}/events")
    call("GET /api/v1/jobs/{job_id}/metrics", f"/api/v1/jobs/{job_id}/metrics")
    call("GET /api/v1/jobs/{job_id}/checkpoints", f"/api/v1/jobs/{job_id}/checkpoints")
    call("GET /api/v1/jobs/{job_id}/artifacts", f"/api/v1/jobs/{job_id}/artifacts")
    evaluations = "/api/v1/models/m/versions/1/evaluations"
    call("GET /api/v1/models/{name}/versions/{ref}/evaluations", evaluations)
    compare = {"versions": "1", "dataset": "d"}
    call("GET /api/v1/models/{name}/compare", "/api/v1/models/m/compare", params=compare)

    # Schedules and pipelines.
    template = {"kind": "train", "entry": "noop"}
    schedule = {"name": "s", "cron": "0 0 * * *", "job": template}
    call("POST /api/v1/schedules", "/api/v1/schedules", json=schedule)
    call("GET /api/v1/schedules", "/api/v1/schedules")
    call("GET /api/v1/schedules/{name}", "/api/v1/schedules/s")
    call("PATCH /api/v1/schedules/{name}", "/api/v1/schedules/s", json={"enabled": False})
    pipeline = {"name": "p", "steps": [{"name": "one", "job": template}]}
    call("POST /api/v1/pipelines", "/api/v1/pipelines", json=pipeline)
    call("GET /api/v1/pipelines", "/api/v1/pipelines")
    call("GET /api/v1/pipelines/{name}", "/api/v1/pipelines/p")
    run = call("POST /api/v1/pipelines/{name}/runs", "/api/v1/pipelines/p/runs")
    call("GET /api/v1/pipelines/{name}/runs", "/api/v1/pipelines/p/runs")
    call("GET /api/v1/pipelines/runs/{run_id}", f"/api/v1/pipelines/runs/{run['id']}")
    cancel = f"/api/v1/pipelines/runs/{run['id']}/cancel"
    call("POST /api/v1/pipelines/runs/{run_id}/cancel", cancel)

    # Deletions last.
    call("DELETE /api/v1/pipelines/{name}", "/api/v1/pipelines/p")
    call("DELETE /api/v1/schedules/{name}", "/api/v1/schedules/s")
    call("DELETE /api/v1/deployments/{name}", "/api/v1/deployments/dep2")
    call("DELETE /api/v1/models/{name}/aliases/{alias}", alias)
    call("DELETE /api/v1/models/{name}/versions/{ref}", "/api/v1/models/m/versions/2")
    call("DELETE /api/v1/models/{name}", "/api/v1/models/gone")
    call("DELETE /api/v1/datasets/{name}", "/api/v1/datasets/e")
    call("DELETE /api/v1/tokens/{token_id}", f"/api/v1/tokens/{made['id']}")

    every = _operations(document)
    assert set(NOT_JSON) <= every, "NOT_JSON names an operation the server no longer has"
    assert set(ELSEWHERE) <= every, "ELSEWHERE names an operation the server no longer has"
    for operation, module in ELSEWHERE.items():
        assert (Path(__file__).parents[2] / module).is_file(), (operation, module)
    missed = sorted(every - call.done - set(NOT_JSON) - set(ELSEWHERE))
    assert missed == [], "operations no step calls: call them above, or say why in NOT_JSON"


#: FastAPI routes left out of the document on purpose: the pages of /docs themselves, and the
#: web UI's (its page, its hashed assets, and the app's client-side routes, all HTML or files).
HIDDEN = frozenset(
    {"GET /docs", "GET /docs/static/swagger-init.js", "GET /", "GET /assets/{name}"}
    | {f"GET /{segment}" for segment in UI_ROUTES}
    | {f"GET /{segment}/{{rest:path}}" for segment in UI_ROUTES}
)


def _app_operations(app: FastAPI) -> set[str]:
    """Every method and path FastAPI routes, included routers' routes too."""
    found: set[str] = set()
    for route in app.routes:
        included = getattr(route, "original_router", None)
        for item in included.routes if included is not None else [route]:
            if isinstance(item, APIRoute):
                found |= {f"{method} {item.path}" for method in item.methods}
    return found


def test_every_route_of_the_app_is_in_the_document(live_server: Any) -> None:
    """So the walk above, which starts from the document, misses no route of the app."""
    platform = Platform.from_settings(live_server.settings)
    try:
        app = create_app(platform).control
        routed = _app_operations(app)
        documented = _operations(app.openapi())
    finally:
        platform.close()
    assert len(routed) > 50
    assert routed - documented == HIDDEN


def test_every_operation_has_a_wire_model() -> None:
    """Each mapped SDK method names what it returns; no operation is mapped twice."""
    assert not set(SDK) & set(WIRE)
    assert not (set(SDK) | set(WIRE)) & set(NOT_JSON)
    for operation in SDK:
        assert "return" in SDK[operation].__annotations__, operation
        _return_type(SDK[operation])
