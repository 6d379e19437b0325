"""The HTTP edge: web pages cannot drive a loopback server, and every answer has its headers.

SECURITY.md item 12 (loopback is not a wall) and item 9 (CSP, nosniff). The
servers here run with auth OFF, as ``aimass server --no-auth`` does: the edge
must hold without tokens.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from tests.security._edge import platform

from aimass.api.middleware import DEFAULT_MAX_BODY, allowed_hosts
from aimass.config import Settings

EVIL = "http://evil.example"


@pytest.fixture
def open_server(settings: Settings) -> Iterator[str]:
    """A real server with auth off on loopback (each backend); its URL."""
    with platform(settings.model_copy(update={"auth": False})) as (url, _app):
        yield url


@pytest.fixture
def web(open_server: str) -> Iterator[httpx.Client]:
    """A plain client for the open server."""
    with httpx.Client(base_url=open_server, timeout=30) as c:
        yield c


def _nothing_queued(web: httpx.Client) -> None:
    response = web.get("/api/v1/jobs")
    assert response.status_code == 200, response.text
    assert response.json() == []


def test_cross_site_form_post_cannot_queue_a_job(web: httpx.Client) -> None:
    spec = json.dumps({"entry": "script", "params": {"command": ["python", "-c", "print(1)"]}})
    # What <form method=post enctype=...> on another site sends: each refused.
    form = web.post("/api/v1/jobs", data={"spec": spec}, headers={"Origin": EVIL})
    assert form.status_code == 403, form.text
    assert "another origin" in form.json()["error"]["message"]
    multipart = web.post(
        "/api/v1/jobs/script",
        files={"source": ("job.py", b"print(1)", "text/x-python")},
        data={"spec": spec},
        headers={"Origin": EVIL, "Sec-Fetch-Site": "cross-site"},
    )
    assert multipart.status_code == 403, multipart.text
    # A form with no Origin (old browsers, some redirects) is still refused by its type.
    plain = web.post("/api/v1/jobs", content=spec, headers={"Content-Type": "text/plain"})
    assert plain.status_code == 415, plain.text
    assert "application/json" in plain.json()["error"]["message"]
    urlencoded = web.post("/api/v1/jobs", data={"spec": spec})
    assert urlencoded.status_code == 415
    _nothing_queued(web)


def test_cross_site_upload_cannot_register_a_trusted_pickle(
    web: httpx.Client, model_files: Any
) -> None:
    meta = json.dumps({"trusted": True})
    for headers in ({"Origin": EVIL}, {"Origin": "null"}, {"Sec-Fetch-Site": "same-site"}):
        response = web.post(
            "/api/v1/models/evil/versions",
            files={"file": ("model.pkl", model_files.pickle.read_bytes())},
            data={"meta": meta},
            headers=headers,
        )
        assert response.status_code == 403, (headers, response.text)
        assert response.headers["x-request-id"] == response.json()["error"]["request_id"]
    assert web.get("/api/v1/models").json() == []


def test_cross_site_post_to_the_inference_path_is_refused(web: httpx.Client) -> None:
    body = json.dumps({"inputs": []})
    response = web.post(
        "/v2/models/m/infer", content=body, headers={"Content-Type": "text/plain", "Origin": EVIL}
    )
    assert response.status_code == 403
    assert "another origin" in response.json()["error"]  # the /v2 error shape
    predict = web.post("/api/v1/deployments/d/predict", content=body,
                       headers={"Content-Type": "text/plain"})  # fmt: skip
    assert predict.status_code == 415


def test_same_origin_page_and_non_browser_clients_may_write(
    web: httpx.Client, open_server: str
) -> None:
    origin = open_server  # http://127.0.0.1:PORT, the Host the page was served from
    made = web.post(
        "/api/v1/projects",
        json={"name": "from-page"},
        headers={"Origin": origin, "Sec-Fetch-Site": "same-origin"},
    )
    assert made.status_code == 201, made.text
    # The CLI, the SDK and curl send neither header; a body-less POST has no type.
    assert web.post("/api/v1/projects", json={"name": "from-cli"}).status_code == 201
    assert web.post("/api/v1/jobs/1/cancel").status_code == 404  # reached the route
    # tritonclient's binary requests reach the inference path (404: nothing deployed).
    binary = web.post(
        "/v2/models/m/infer",
        content=b'{"inputs":[]}',
        headers={
            "Content-Type": "application/octet-stream",
            "Inference-Header-Content-Length": "13",
        },
    )
    assert binary.status_code == 404, binary.text


def test_dns_rebinding_host_is_refused(web: httpx.Client, open_server: str) -> None:
    port = open_server.rsplit(":", 1)[1]
    for path in ("/api/v1/models", "/v2/models/m", "/metrics", "/docs", "/openapi.json"):
        response = web.get(path, headers={"Host": f"rebound.evil.example:{port}"})
        assert response.status_code == 403, (path, response.text)
        assert "AIMASS_ALLOWED_HOSTS" in response.text
    # Loopback names, with or without the port, are this server.
    for host in ("127.0.0.1", f"127.0.0.1:{port}", f"localhost:{port}", f"[::1]:{port}"):
        assert web.get("/api/v1/models", headers={"Host": host}).status_code == 200, host
    # Orchestrators probe health by address; those answers reveal nothing.
    assert web.get("/v2/health/live", headers={"Host": "10.1.2.3:8080"}).status_code == 200


def test_allowed_hosts_come_from_the_bind_host_public_url_and_setting(settings: Settings) -> None:
    default = allowed_hosts(settings)
    assert default == frozenset({b"127.0.0.1", b"localhost", b"[::1]"})
    wide = settings.model_copy(
        update={
            "host": "0.0.0.0",
            "public_url": "https://ml.example.org:8443/",
            "allowed_hosts": "a.example, B.example:9000, fe80::1",
        }
    )
    assert allowed_hosts(wide) == default | {
        b"ml.example.org", b"a.example", b"b.example", b"[fe80::1]"
    }  # fmt: skip
    assert allowed_hosts(settings.model_copy(update={"host": "10.0.0.5"})) == default | {
        b"10.0.0.5"
    }
    assert allowed_hosts(settings.model_copy(update={"allowed_hosts": "*"})) is None


SECURITY = {
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "x-frame-options": "DENY",
}


def _assert_secured(response: httpx.Response) -> None:
    for name, value in SECURITY.items():
        assert response.headers.get(name) == value, (response.url, name)
    assert response.headers.get_list("x-content-type-options") == ["nosniff"]
    csp = response.headers["content-security-policy"]
    assert "default-src 'self'" in csp and "frame-ancestors 'none'" in csp
    assert "unsafe-inline" not in csp and "unsafe-eval" not in csp
    assert response.headers.get("x-request-id")


def test_security_headers_are_on_every_answer(web: httpx.Client) -> None:
    answers = [
        web.get("/api/v1/models"),  # an API answer
        web.get("/api/v1/models/none"),  # an API error
        web.get("/no/such/route"),  # a 404 from routing
        web.get("/v2/health/live"),  # the inference path
        web.get("/v2/models/none"),  # an inference error
        web.post("/v2/models/m/infer", json={"inputs": []}),
        web.get("/metrics"),
        web.get("/docs"),
        web.get("/openapi.json"),
        web.get("/docs/static/swagger-init.js"),
        web.post("/api/v1/jobs", data={"a": "b"}),  # the edge's own refusal
    ]
    for response in answers:
        _assert_secured(response)
    assert answers[0].status_code == 200 and answers[3].status_code == 200


def test_docs_load_nothing_from_another_host_and_run_no_inline_script(web: httpx.Client) -> None:
    page = web.get("/docs")
    assert page.status_code == 200
    html = page.text
    assert "//" not in re.sub(r"<!DOCTYPE[^>]*>", "", html)  # no absolute or scheme-less URL
    scripts = re.findall(r"<script([^>]*)>(.*?)</script>", html, re.S)
    assert scripts and all(body.strip() == "" and "src=" in attrs for attrs, body in scripts)
    assets = re.findall(r'(?:src|href)="([^"]+)"', html)
    assert len(assets) >= 4
    for asset in assets:
        assert asset.startswith("/docs/static/"), asset
        loaded = web.get(asset)
        assert loaded.status_code == 200, asset
        assert len(loaded.content) > 100
        _assert_secured(loaded)
    init = web.get("/docs/static/swagger-init.js").text
    assert '"/openapi.json"' in init and "validatorUrl: null" in init


def test_chunked_json_body_over_the_limit_is_413(web: httpx.Client) -> None:
    def chunks() -> Iterator[bytes]:
        yield b'{"name": "'
        for _ in range(2 * DEFAULT_MAX_BODY // 65536):
            yield b"a" * 65536
        yield b'"}'

    try:
        response = web.post(
            "/api/v1/projects", content=chunks(), headers={"Content-Type": "application/json"}
        )
    except httpx.TransportError:
        pytest.fail("the server dropped the connection instead of answering 413")
    assert response.status_code == 413, response.text
    error = response.json()["error"]
    assert error["code"] == "too_large"
    assert error["request_id"] == response.headers["x-request-id"]
