"""The fast path of a small JSON /v2 infer request answers exactly as the normal ASGI path.

Each request is sent twice on raw sockets: once as the fast path takes it (a body of
known length) and once chunked (a body the fast path leaves to the normal ASGI cycle,
the guard and the inference app as before). The answers must be the same bytes, the
``date`` header aside; ``FastInfer.taken`` says which path answered, and
``DirectInfer.answered`` whether the fast path answered it with no task (queued on the
spot, answered from its batch's callback) or through the inference app.
"""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from tests.conftest import serve_app

from aimass.api.app import PlatformApp, create_app
from aimass.api.server import prepare
from aimass.config import Settings
from aimass.platform import Platform
from tests_support import deploy, oip_json, upload

LIMIT = 4096  # AIMASS_MAX_INFERENCE_BYTES for these servers


@dataclass
class Fast:
    url: str
    port: int
    token: str
    app: PlatformApp
    row: list[float]


@pytest.fixture
def fast(settings: Settings, model_files: Any) -> Iterator[Fast]:
    """A server with one tiny ONNX deployment ``tiny``, every prediction logged."""
    settings = settings.model_copy(
        update={
            "max_inference_bytes": LIMIT,
            "prediction_log_sample": 1.0,
            "max_inflight": 2,
            "body_timeout_s": 1.0,
        }
    )
    prepare(settings)
    app = create_app(Platform.from_settings(settings))
    # A token's check stays cached through a test, so which path answers (the direct one
    # needs the check cached) does not depend on how slow the machine is.
    app.platform.auth_cache.ttl_s = 600.0
    with serve_app(settings, app) as url:
        token = settings.token_file.read_text().strip()
        with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}) as http:
            upload(http, "cancer", model_files.onnx)
            deploy(http, {"name": "tiny", "model": "cancer", "version": 1})
            upload(http, "broken", _reshape_onnx(settings.home / "reshape.onnx"))
            deploy(http, {"name": "broken", "model": "broken", "version": 1})
        row = [float(v) for v in model_files.x[0]]
        yield Fast(url, settings.port, token, app, row)


def _exchange(port: int, request: bytes) -> tuple[bytes, list[tuple[bytes, bytes]], bytes]:
    """Send one request on a new connection; its status line, headers (no date), body."""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(request)
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = sock.recv(65536)
            assert chunk, data
            data += chunk
        head, _, body = data.partition(b"\r\n\r\n")
        status, *lines = head.split(b"\r\n")
        headers = [tuple(line.split(b": ", 1)) for line in lines]
        length = int(dict(headers)[b"content-length"])
        while len(body) < length:
            chunk = sock.recv(65536)
            assert chunk
            body += chunk
    kept = [(k, v) for k, v in headers if k != b"date"]
    assert len(kept) == len(headers) - 1  # one date header, as uvicorn writes it
    return status, kept, body  # type: ignore[return-value]


def _reshape_onnx(path: Path) -> Path:
    """An ONNX model of 30 inputs that reshapes them to rows of 4: it loads, and its
    every predict fails (30 values do not make rows of 4) once the request is queued."""
    import onnx
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("Reshape", ["X", "shape"], ["Y"])],
        "reshape",
        [helper.make_tensor_value_info("X", TensorProto.FLOAT, [None, 30])],
        [helper.make_tensor_value_info("Y", TensorProto.FLOAT, [None, 4])],
        [helper.make_tensor("shape", TensorProto.INT64, [2], [-1, 4])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, path)
    return path


def _warm(fast: Fast) -> None:
    """One request, so the token's check is cached (the direct path needs it cached)."""
    body = json.dumps(oip_json([fast.row])).encode()
    head = f"POST /v2/models/tiny/infer HTTP/1.1\r\nHost: 127.0.0.1:{fast.port}\r\n"
    auth = f"Authorization: Bearer {fast.token}\r\nContent-Length: {len(body)}\r\n\r\n"
    status, _, _ = _exchange(fast.port, (head + auth).encode() + body)
    assert status == b"HTTP/1.1 200 OK"


def _both(
    fast: Fast, path: str, body: bytes, headers: dict[str, str], *, direct: bool = False
) -> tuple[tuple[Any, ...], tuple[Any, ...]]:
    """The answers to ``body`` sent plain (fast path: with no task if ``direct``, else
    through the inference app) and chunked (normal path)."""
    head = f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{fast.port}\r\n"
    head += "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    plain = f"{head}Content-Length: {len(body)}\r\n\r\n".encode() + body
    chunked = (
        f"{head}Transfer-Encoding: chunked\r\n\r\n{len(body):x}\r\n".encode()
        + body
        + b"\r\n0\r\n\r\n"
    )
    fast_path = fast.app.fast_path
    before, answered = fast_path.taken, fast_path.direct.answered
    quick = _exchange(fast.port, plain)
    assert fast_path.taken == before + 1, "the plain request was not served on the fast path"
    assert fast_path.direct.answered == answered + direct, "direct or not, as expected"
    normal = _exchange(fast.port, chunked)
    assert fast_path.taken == before + 1, "the chunked request went to the fast path"
    assert fast_path.direct.answered == answered + direct
    return quick, normal


def _headers(token: str, request_id: str) -> dict[str, str]:
    return {
        "Authorization": f"Bearer {token}",
        "Content-Type": "application/json",
        "X-Request-Id": request_id,
    }


def test_a_valid_request_is_answered_alike(fast: Fast) -> None:
    body = json.dumps(oip_json([fast.row])).encode()
    _warm(fast)
    quick, normal = _both(
        fast, "/v2/models/tiny/infer", body, _headers(fast.token, "req-0001"), direct=True
    )
    assert quick == normal
    status, headers, answer = quick
    assert status == b"HTTP/1.1 200 OK"
    names = [k for k, _ in headers]
    assert b"x-request-id" in names and b"content-security-policy" in names
    assert dict(headers)[b"x-request-id"] == b"req-0001"
    assert json.loads(answer)["model_name"] == "tiny"
    # The version path too, and a project query.
    quick, normal = _both(
        fast, "/v2/models/tiny/versions/1/infer?project=default", body,
        _headers(fast.token, "req-0002"), direct=True,
    )  # fmt: skip
    assert quick == normal and quick[0] == b"HTTP/1.1 200 OK"
    # A token not checked yet: the inference app checks it (and answers), not the direct path.
    fast.app.platform.auth_cache.clear()
    quick, normal = _both(fast, "/v2/models/tiny/infer", body, _headers(fast.token, "req-0003"))
    assert quick == normal and quick[0] == b"HTTP/1.1 200 OK"


def test_a_model_that_fails_once_queued_is_answered_alike(fast: Fast) -> None:
    """The direct path queues the request; the model then fails on it: the same answer,
    counted alike."""
    body = json.dumps(oip_json([fast.row])).encode()
    _warm(fast)
    quick, normal = _both(
        fast, "/v2/models/broken/infer", body, _headers(fast.token, "req-fail-1"), direct=True
    )
    assert quick == normal
    # ONNX Runtime's refusal of the input is the caller's to fix: a 400 that says so.
    assert quick[0] == b"HTTP/1.1 400 Bad Request", quick
    assert "reshape" in json.loads(quick[2])["error"].lower(), quick
    with httpx.Client(base_url=fast.url, headers={"Authorization": f"Bearer {fast.token}"}) as http:
        metrics = http.get("/metrics").text
    failed = [
        line
        for line in metrics.splitlines()
        if line.startswith("aimass_inference_requests_total")
        and 'deployment="broken"' in line
        and 'code="400"' in line
    ]
    assert failed and float(failed[0].rsplit(" ", 1)[1]) == 2  # the plain one and the chunked


@pytest.mark.parametrize(
    ("case", "status"),
    [("bad token", 401), ("malformed tensor", 400), ("unknown model", 404), ("not JSON", 400)],
)
def test_errors_are_answered_alike(fast: Fast, case: str, status: int) -> None:
    path, token = "/v2/models/tiny/infer", fast.token
    body = json.dumps(oip_json([fast.row])).encode()
    if case == "bad token":
        token = "not-a-token"
    elif case == "malformed tensor":
        request = oip_json([fast.row])
        request["inputs"][0]["shape"] = [1, 29]
        body = json.dumps(request).encode()
    elif case == "unknown model":
        path = "/v2/models/nope/infer"
    else:
        body = b"{not json"
    _warm(fast)
    quick, normal = _both(fast, path, body, _headers(token, "req-err-01"))  # (not direct)
    assert quick == normal
    assert quick[0].startswith(f"HTTP/1.1 {status} ".encode())
    assert "error" in json.loads(quick[2])


def test_what_the_guard_refuses_is_left_to_it(fast: Fast) -> None:
    """An oversized body, a cross-site write and a form body: the guard's answers, unchanged."""
    fast_path = fast.app.fast_path
    before = fast_path.taken
    head = f"POST /v2/models/tiny/infer HTTP/1.1\r\nHost: 127.0.0.1:{fast.port}\r\n"
    auth = f"Authorization: Bearer {fast.token}\r\n"
    big = b"{" + b" " * LIMIT + b"}"
    status, _, answer = _exchange(
        fast.port, f"{head}{auth}Content-Length: {len(big)}\r\n\r\n".encode() + big
    )
    assert status == b"HTTP/1.1 413 Request Entity Too Large"
    assert "AIMASS_MAX_INFERENCE_BYTES" in json.loads(answer)["error"]
    small = json.dumps(oip_json([fast.row])).encode()
    for extra, code in (
        ("Origin: http://evil.example\r\n", 403),
        ("Content-Type: text/plain\r\n", 415),
    ):
        request = f"{head}{auth}{extra}Content-Length: {len(small)}\r\n\r\n".encode() + small
        status, _, _ = _exchange(fast.port, request)
        assert status.startswith(f"HTTP/1.1 {code} ".encode())
    assert fast_path.taken == before  # none of them reached the fast path's app call


def test_keep_alive_metrics_and_prediction_log(fast: Fast) -> None:
    """Many requests on one connection: all answered, counted and logged as before."""
    body = oip_json([fast.row])
    before, answered = fast.app.fast_path.taken, fast.app.fast_path.direct.answered
    with httpx.Client(base_url=fast.url, headers={"Authorization": f"Bearer {fast.token}"}) as http:
        for _ in range(20):
            response = http.post("/v2/models/tiny/infer", json=body)
            assert response.status_code == 200, response.text
        assert fast.app.fast_path.taken == before + 20
        assert fast.app.fast_path.direct.answered >= answered + 19  # (the first checks the token)
        metrics = http.get("/metrics").text
        line = next(
            line
            for line in metrics.splitlines()
            if line.startswith("aimass_inference_requests_total")
            and 'deployment="tiny"' in line
            and 'code="200"' in line
        )
        assert float(line.rsplit(" ", 1)[1]) == 20
        deadline = time.monotonic() + 30
        while True:
            logged = http.get("/api/v1/deployments/tiny/predictions", params={"limit": 100})
            assert logged.status_code == 200, logged.text
            if logged.json()["total"] == 20:
                break
            assert time.monotonic() < deadline, logged.json()
            time.sleep(0.2)


def test_a_body_that_stops_or_a_client_that_leaves(fast: Fast) -> None:
    """A held request whose body stalls gets the 408 with its id; clients that leave
    mid-body give their in-flight places back (the cap here is 2)."""

    def head(length: int = 500) -> str:
        return (
            f"POST /v2/models/tiny/infer HTTP/1.1\r\nHost: 127.0.0.1:{fast.port}\r\n"
            f"Authorization: Bearer {fast.token}\r\nContent-Length: {length}\r\n"
        )

    with socket.create_connection(("127.0.0.1", fast.port), timeout=10) as sock:
        sock.sendall(f"{head()}X-Request-Id: stalled-fast-1\r\n\r\n".encode() + b'{"inputs": ')
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 408"), answer
    assert b'"request_id":"stalled-fast-1"' in answer
    for _ in range(3):
        leaving = [socket.create_connection(("127.0.0.1", fast.port)) for _ in range(2)]
        for sock in leaving:
            sock.sendall(f"{head()}\r\n".encode() + b'{"inputs": ')
        time.sleep(0.2)
        for sock in leaving:
            sock.close()
        time.sleep(0.2)
    body = json.dumps(oip_json([fast.row])).encode()
    status, _, _ = _exchange(fast.port, f"{head(len(body))}\r\n".encode() + body)
    assert status == b"HTTP/1.1 200 OK"
