"""Project scoping: unknown projects are 404 everywhere, and only global admins run code."""

from __future__ import annotations

import json
from typing import Any

import httpx

from conftest import LiveServer
from tests_support import upload

PATH_VALUES = {
    "name": "m",
    "ref": "1",
    "alias": "a",
    "version": "1",
    "job_id": "1",
    "attempt": "1",
    "run_id": "1",
    "node": "n1",
}


#: Bodies that name model "m", so the OpenAI-compatible routes get as far as looking it up.
OPENAI_BODIES: dict[str, dict[str, Any]] = {
    "/v1/embeddings": {"model": "m", "input": "hi"},
    "/v1/completions": {"model": "m", "prompt": "hi"},
    "/v1/chat/completions": {"model": "m", "messages": [{"role": "user", "content": "hi"}]},
}


def _fill(path: str) -> str:
    for key, value in PATH_VALUES.items():
        path = path.replace("{" + key + "}", value)
    assert "{" not in path, f"add a value for {path}"
    return path


def _as(live_server: LiveServer, secret: str) -> httpx.Client:
    return httpx.Client(
        base_url=live_server.url, headers={"Authorization": f"Bearer {secret}"}, timeout=30
    )


def _project_routes(http: httpx.Client) -> list[tuple[str, str]]:
    spec = http.get("/openapi.json").json()
    return [
        (method.upper(), path)
        for path, operations in spec["paths"].items()
        for method, operation in operations.items()
        if any(p["name"] == "project" for p in operation.get("parameters", []))
    ]


def test_an_unknown_project_is_404_on_every_route(http: httpx.Client) -> None:
    routes = _project_routes(http)
    gets = [path for method, path in routes if method == "GET"]
    assert len(gets) >= 30 and "/api/v1/whoami" in gets and "/api/v1/jobs" in gets
    for method, path in routes:
        body = OPENAI_BODIES.get(path, {})
        response = http.request(method, _fill(path), params={"project": "nope"}, json=body)
        if path == "/v1/models":
            # OpenAI's model list reads the deployments this server holds, in memory like
            # every inference route: an unknown project simply has none (and says no more).
            assert response.status_code == 200 and response.json()["data"] == [], response.text
            continue
        assert response.status_code == 404, f"{method} {path}: {response.text}"
        error = response.json()["error"]
        if path.startswith(("/v2/", "/v1/")) or path.endswith("/predict"):
            # The inference path looks deployments up in memory, never in the database: a
            # model in an unknown project is as unknown as any other.
            message = error if isinstance(error, str) else error["message"]
            assert "'m'" in message and "nope" not in message, (path, message)
        else:
            assert error["message"] == "project 'nope' not found", path
    assert [p["name"] for p in http.get("/api/v1/projects").json()] == ["default"]


def test_a_scoped_token_learns_nothing_of_other_projects(
    live_server: LiveServer, http: httpx.Client
) -> None:
    http.post("/api/v1/projects", json={"name": "p2"})
    body = {"name": "p2-viewer", "role": "viewer", "project": "p2"}
    secret = http.post("/api/v1/tokens", json=body).json()["secret"]
    with _as(live_server, secret) as scoped:
        for project in ("default", "nope"):
            response = scoped.get("/api/v1/models", params={"project": project})
            assert response.status_code == 403, project
        # Naming no project means the token's own.
        assert scoped.get("/api/v1/whoami").json()["project"] == "p2"
        assert scoped.get("/api/v1/models").status_code == 200


def _admins(live_server: LiveServer, http: httpx.Client) -> tuple[httpx.Client, httpx.Client]:
    """The installation's global admin and an admin limited to project p2."""
    assert http.post("/api/v1/projects", json={"name": "p2"}).status_code == 201
    body = {"name": "p2-admin", "role": "admin", "project": "p2"}
    secret = http.post("/api/v1/tokens", json=body).json()["secret"]
    return http, _as(live_server, secret)


SCRIPT = b"def main(params):\n    return {'ran': True}\n"


def _submit_script(api: httpx.Client, expect: int) -> dict[str, Any]:
    response = api.post(
        "/api/v1/jobs/script",
        params={"project": "p2"},
        files={"source": ("train.py", SCRIPT, "text/x-python")},
        data={"spec": json.dumps({"kind": "script", "entry": "train.py:main"})},
    )
    assert response.status_code == expect, response.text
    body: dict[str, Any] = response.json()
    return body


def test_only_a_global_admin_may_submit_script_jobs(
    live_server: LiveServer, http: httpx.Client
) -> None:
    installation, project_admin = _admins(live_server, http)
    with project_admin:
        refused = _submit_script(project_admin, 403)
        assert "only an admin token valid on all projects" in refused["error"]["message"]
        assert project_admin.get("/api/v1/jobs", params={"project": "p2"}).json() == []
    job = _submit_script(installation, 201)
    assert job["project"] == "p2" and job["kind"] == "script"


def test_only_a_global_admin_may_mark_an_upload_or_bundle_trusted(
    live_server: LiveServer, http: httpx.Client, model_files: Any
) -> None:
    installation, project_admin = _admins(live_server, http)
    upload(installation, "safe", model_files.onnx)
    bundle = installation.get("/api/v1/models/safe/versions/1/bundle").content
    with project_admin:
        project_admin.params = project_admin.params.set("project", "p2")
        refused = upload(project_admin, "m", model_files.pickle, {"trusted": True}, expect=403)
        assert "only an admin token valid on all projects" in refused["error"]["message"]
        imported = project_admin.post(
            "/api/v1/bundles",
            files={"file": ("b.aimass", bundle)},
            data={"meta": json.dumps({"trusted": True})},
        )
        assert imported.status_code == 403, imported.text
        assert project_admin.get("/api/v1/versions").json() == []
        upload(project_admin, "m", model_files.onnx)  # untrusted uploads stay theirs to make
    installation.params = installation.params.set("project", "p2")
    trusted = upload(installation, "pickled", model_files.pickle, {"trusted": True})
    assert trusted["trusted"] is True
