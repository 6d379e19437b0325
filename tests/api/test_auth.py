"""Access control: tokens on from the first start, roles enforced on every route."""

from __future__ import annotations

import os
import stat
from typing import Any

import httpx
import pytest

PUBLIC = {"/v2/health/live", "/v2/health/ready"}


def _fill(path: str) -> str:
    return (
        path.replace("{name}", "m")
        .replace("{ref}", "1")
        .replace("{alias}", "a")
        .replace("{version}", "1")
        .replace("{token_id}", "1")
    )


def test_every_route_but_health_demands_a_token(live_server: Any, http: httpx.Client) -> None:
    spec = http.get("/openapi.json").json()
    assert spec["security"] == [{"bearer": []}], "Swagger UI's Authorize sends the token"
    checked = 0
    with httpx.Client(base_url=live_server.url) as anonymous:
        for path, operations in spec["paths"].items():
            for method in operations:
                response = anonymous.request(method.upper(), _fill(path))
                if path in PUBLIC:
                    assert response.status_code == 200, path
                    assert operations[method]["security"] == [], "the document says: no token"
                    continue
                assert response.status_code == 401, f"{method.upper()} {path}"
                error = response.json()["error"]
                if path.startswith(("/api/", "/v1/")):  # /v1: OpenAI's {"error": {"message"}}
                    assert error["code"] == "unauthenticated"
                else:  # /v2 and /metrics answer as KServe and Triton do: {"error": "..."}
                    assert isinstance(error, str) and error, path
                checked += 1
    assert checked >= 20


def test_first_start_saves_an_owner_only_admin_token(live_server: Any) -> None:
    token_file = live_server.home / "token"
    mode = stat.S_IMODE(os.stat(token_file).st_mode)
    assert mode == 0o600
    assert token_file.read_text().strip() == live_server.admin_token


def _as(live_server: Any, secret: str) -> httpx.Client:
    return httpx.Client(base_url=live_server.url, headers={"Authorization": f"Bearer {secret}"})


def test_wrong_and_revoked_tokens_are_401_and_change_nothing(
    live_server: Any, http: httpx.Client
) -> None:
    made = http.post("/api/v1/tokens", json={"name": "ci", "role": "editor"}).json()
    with _as(live_server, "aim_not-a-real-token") as wrong:
        response = wrong.post("/api/v1/models", json={"name": "m"})
        assert response.status_code == 401
        assert response.json()["error"]["message"] == "invalid token"
    with _as(live_server, made["secret"]) as editor:
        assert editor.post("/api/v1/models", json={"name": "before"}).status_code == 201
        assert http.delete(f"/api/v1/tokens/{made['id']}").json()["revoked_at"]
        response = editor.post("/api/v1/models", json={"name": "after"})
        assert response.status_code == 401
        assert "revoked" in response.json()["error"]["message"]
    assert [m["name"] for m in http.get("/api/v1/models").json()] == ["before"]


def test_viewer_reads_but_may_not_write(live_server: Any, http: httpx.Client) -> None:
    http.post("/api/v1/models", json={"name": "seen"})
    secret = http.post("/api/v1/tokens", json={"name": "v", "role": "viewer"}).json()["secret"]
    with _as(live_server, secret) as viewer:
        assert [m["name"] for m in viewer.get("/api/v1/models").json()] == ["seen"]
        for method, path, body in [
            ("POST", "/api/v1/models", {"name": "x"}),
            ("PATCH", "/api/v1/models/seen", {"description": "changed"}),
            ("DELETE", "/api/v1/models/seen", None),
            ("POST", "/api/v1/tokens", {"name": "t", "role": "admin"}),
        ]:
            response = viewer.request(method, path, json=body)
            assert response.status_code == 403, path
            assert response.json()["error"]["code"] == "forbidden"
    models = http.get("/api/v1/models").json()
    assert [(m["name"], m["description"]) for m in models] == [("seen", "")]


def test_editor_may_not_manage_tokens(live_server: Any, http: httpx.Client) -> None:
    secret = http.post("/api/v1/tokens", json={"name": "e", "role": "editor"}).json()["secret"]
    with _as(live_server, secret) as editor:
        assert editor.get("/api/v1/tokens").status_code == 403
        assert editor.post("/api/v1/models", json={"name": "ok"}).status_code == 201


def test_project_scoped_token_cannot_reach_another_project(
    live_server: Any, http: httpx.Client
) -> None:
    assert http.post("/api/v1/projects", json={"name": "team-a"}).status_code == 201
    secret = http.post(
        "/api/v1/tokens", json={"name": "a", "role": "editor", "project": "team-a"}
    ).json()["secret"]
    with _as(live_server, secret) as scoped:
        ok = scoped.post("/api/v1/models", params={"project": "team-a"}, json={"name": "x"})
        assert ok.status_code == 201
        denied = scoped.get("/api/v1/models", params={"project": "default"})
        assert denied.status_code == 403
        assert "team-a" in denied.json()["error"]["message"]


def test_auth_off_is_refused_beyond_loopback(settings: Any) -> None:
    from aimass.api.server import check_exposure
    from aimass.errors import InvalidInput

    exposed = settings.model_copy(update={"auth": False, "host": "0.0.0.0"})
    with pytest.raises(InvalidInput, match="auth off"):
        check_exposure(exposed)
    check_exposure(settings.model_copy(update={"auth": False, "host": "127.0.0.1"}))
