"""Every error is a 4xx with a real request id, or a 500 that still carries one.

Before: 2**63 in an id or offset reached the database and came back as a 500
whose body said ``"request_id": "-"``, with no X-Request-ID header.
"""

from __future__ import annotations

import re
from typing import Any

import httpx
import pytest
from tests.security._edge import platform, serving

from aimass.api.ids import MAX_INT
from aimass.config import Settings

BAD_VALUES = (str(2**63), str(2**64), "-1", str(10**40))


def _int_params(openapi: dict[str, Any]) -> list[tuple[str, str, str, str, list[Any]]]:
    """(method, path, parameter name, where, all parameters) for every integer parameter."""
    found = []
    for path, item in openapi["paths"].items():
        for method, operation in item.items():
            params = operation.get("parameters", [])
            for param in params:
                schema = param.get("schema", {})
                types = {schema.get("type")} | {s.get("type") for s in schema.get("anyOf", [])}
                if "integer" in types:
                    found.append((method, path, param["name"], param["in"], params))
    return found


def _url(path: str, params: list[dict[str, Any]], name: str, where: str, value: str) -> str:
    def fill(match: re.Match[str]) -> str:
        key = match.group(1)
        if key == name and where == "path":
            return value
        spec = next(p for p in params if p["name"] == key)
        return "1" if "integer" in str(spec.get("schema")) else "m"

    url = re.sub(r"\{([^}]+)\}", fill, path)
    return url + (f"?{name}={value}" if where == "query" else "")


def test_every_integer_parameter_is_bounded_in_the_schema(http: httpx.Client) -> None:
    found = _int_params(http.get("/openapi.json").json())
    assert len(found) >= 20
    for method, path, name, _where, params in found:
        schema = next(p for p in params if p["name"] == name)["schema"]
        bounds = [schema, *schema.get("anyOf", [])]
        assert any(b.get("maximum", 2**64) <= MAX_INT for b in bounds), (method, path, name)
        assert any("minimum" in b for b in bounds), (method, path, name)


def test_huge_ids_and_offsets_are_4xx_with_the_request_id(http: httpx.Client) -> None:
    found = _int_params(http.get("/openapi.json").json())
    for method, path, name, where, params in found:
        for value in BAD_VALUES:
            url = _url(path, params, name, where, value)
            headers = {name: value} if where == "header" else {}
            response = http.request(method.upper(), url, json={}, headers=headers)
            assert 400 <= response.status_code < 500, (method, url, response.text)
            request_id = response.headers.get("x-request-id")
            assert request_id and request_id != "-", (method, url)
            error = response.json()["error"]
            if path.startswith("/v2/"):
                # The Open Inference Protocol's error is {"error": "<message>"}: the id is
                # in the header only.
                assert isinstance(error, str) and error, (method, url)
            else:
                assert error["request_id"] == request_id, (method, url)


def test_unexpected_error_still_carries_the_request_id(settings: Settings) -> None:
    with platform(settings) as (url, app):

        @app.control.get("/api/v1/_boom", include_in_schema=False)
        def boom() -> None:
            raise RuntimeError("a bug")

        headers = {"Authorization": f"Bearer {settings.token_file.read_text().strip()}"}
        with httpx.Client(base_url=url, headers=headers) as client:
            response = client.get("/api/v1/_boom")
            assert response.status_code == 500
            request_id = response.headers["x-request-id"]
            assert request_id != "-"
            error = response.json()["error"]
            assert error == {
                "code": "internal",
                "message": "internal error; quote the request id",
                "request_id": request_id,
            }
            assert "a bug" not in response.text
            given = client.get("/api/v1/_boom", headers={"X-Request-ID": "caller-chosen-42"})
            assert given.headers["x-request-id"] == "caller-chosen-42"
            assert given.json()["error"]["request_id"] == "caller-chosen-42"


def test_error_escaping_every_handler_still_carries_the_request_id(
    settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    from aimass.api.middleware import EdgePolicy, RequestGuard

    async def broken(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            raise RuntimeError("escaped everything")

    guard = RequestGuard(broken, EdgePolicy.from_settings(settings), lambda path: False)
    with serving(settings, guard) as url, httpx.Client(base_url=url) as client:
        response = client.get("/anything")
        v2 = client.get("/v2/models/m")
    assert response.status_code == 500
    request_id = response.headers["x-request-id"]
    assert request_id != "-"
    assert response.json()["error"]["request_id"] == request_id
    assert response.headers["x-content-type-options"] == "nosniff"
    assert v2.status_code == 500 and v2.headers["x-request-id"] != "-"
    assert "escaped everything" not in response.text
    assert request_id in caplog.text  # the log line a user's quoted id leads to
