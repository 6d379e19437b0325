"""Bad input gets a clear 4xx, and nothing is stored (one regression test per hole class)."""

from __future__ import annotations

import io
import json
import pickle
import zipfile
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests_support import upload


def _stored_files(settings: Any) -> list[Path]:
    root = Path(settings.resolved_artifacts)
    return [p for p in root.rglob("*") if p.is_file()] if root.exists() else []


def _assert_nothing_registered(http: httpx.Client, settings: Any) -> None:
    assert http.get("/api/v1/versions").json() == []
    assert _stored_files(settings) == []
    assert list(settings.spool_dir.iterdir()) == []


class _RunsCode:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, tuple[str]]:
        return (
            eval,
            (f"open({str(self.marker)!r}, 'w').write('pwned')",),
        )


def test_cve_2024_37052_untrusted_pickle_is_refused_without_running_it(
    http: httpx.Client, tmp_path: Path, settings: Any
) -> None:
    marker = tmp_path / "pwned"
    evil = tmp_path / "model.pkl"
    evil.write_bytes(pickle.dumps(_RunsCode(marker)))
    body = upload(http, "evil", evil, expect=422)
    assert "trust" in body["error"]["message"]
    assert not marker.exists()
    _assert_nothing_registered(http, settings)


def test_only_an_admin_may_mark_an_upload_trusted(
    http: httpx.Client, model_files: Any, live_server: Any, settings: Any
) -> None:
    secret = http.post("/api/v1/tokens", json={"name": "ed", "role": "editor"}).json()["secret"]
    with httpx.Client(
        base_url=live_server.url, headers={"Authorization": f"Bearer {secret}"}
    ) as ed:
        body = upload(ed, "m", model_files.pickle, {"trusted": True}, expect=403)
    assert "admin" in body["error"]["message"]
    _assert_nothing_registered(http, settings)


@pytest.mark.parametrize(
    "filename",
    ["../evil.onnx", "/etc/passwd", "..", "a/../../b.onnx", "..\\evil.onnx", "ok/../x.onnx"],
)
def test_mlflow_path_traversal_file_names_are_refused(
    http: httpx.Client, model_files: Any, settings: Any, filename: str
) -> None:
    body = upload(http, "m", model_files.onnx, filename=filename, expect=400)
    assert "file name" in body["error"]["message"]
    _assert_nothing_registered(http, settings)


@pytest.mark.parametrize("name", ["..", "../x", "a/b", "%2e%2e", "-x", ""])
def test_model_names_that_climb_out_are_refused(
    http: httpx.Client, model_files: Any, settings: Any, name: str
) -> None:
    response = http.post("/api/v1/models", json={"name": name})
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_input"
    _assert_nothing_registered(http, settings)


def _bundle_with(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return buffer.getvalue()


@pytest.mark.parametrize("member", ["artifact/../../evil.onnx", "/etc/cron.d/evil", "../evil"])
def test_kserve_zip_slip_bundle_members_are_refused(
    http: httpx.Client, settings: Any, member: str, tmp_path: Path
) -> None:
    manifest = {"format": "aimass-bundle", "format_version": 1}
    data = _bundle_with({"manifest.json": json.dumps(manifest).encode(), member: b"x"})
    response = http.post("/api/v1/bundles", files={"file": ("b.aimass", data)})
    assert response.status_code == 422, response.text
    _assert_nothing_registered(http, settings)
    assert not (tmp_path / "evil.onnx").exists()


def test_corrupt_onnx_is_refused(
    http: httpx.Client, tmp_path: Path, settings: Any, model_files: Any
) -> None:
    broken = tmp_path / "model.onnx"
    broken.write_bytes(model_files.onnx.read_bytes()[:200])
    body = upload(http, "broken", broken, {"flavor": "onnx"}, expect=422)
    assert "ONNX" in body["error"]["message"]
    _assert_nothing_registered(http, settings)


def test_body_over_the_limit_is_413_before_it_is_read(
    http: httpx.Client, settings: Any, live_server: Any
) -> None:
    import socket

    too_big = settings.max_upload_bytes + 1
    request = (
        "POST /api/v1/models/big/versions HTTP/1.1\r\n"
        f"Host: 127.0.0.1\r\nAuthorization: Bearer {live_server.admin_token}\r\n"
        "Content-Type: multipart/form-data; boundary=x\r\n"
        f"Content-Length: {too_big}\r\n\r\n"
    )
    with socket.create_connection(("127.0.0.1", settings.port), timeout=10) as sock:
        sock.sendall(request.encode())  # headers only: the server must answer without the body
        answer = sock.recv(65536).decode()
    assert answer.startswith("HTTP/1.1 413")
    assert '"code":"too_large"' in answer
    _assert_nothing_registered(http, settings)


def test_cve_2025_23310_chunked_body_is_counted_as_it_arrives(
    http: httpx.Client, settings: Any
) -> None:
    chunk = b"0" * (1024 * 1024)
    sent = 0

    def body() -> Any:
        nonlocal sent
        boundary = b'--b\r\nContent-Disposition: form-data; name="file"; filename="m.onnx"\r\n\r\n'
        yield boundary
        while sent < settings.max_upload_bytes + 10 * len(chunk):
            sent += len(chunk)
            yield chunk

    try:
        response = http.post(
            "/api/v1/models/big/versions",
            content=body(),
            headers={"content-type": "multipart/form-data; boundary=b"},
        )
        assert response.status_code == 413
    except (httpx.WriteError, httpx.RemoteProtocolError, httpx.ReadError):
        pass  # the server may close the connection once it has answered 413
    assert sent < settings.max_upload_bytes + 10 * len(chunk) + 1
    _assert_nothing_registered(http, settings)


def test_unknown_model_is_404(http: httpx.Client) -> None:
    for path in (
        "/api/v1/models/nope",
        "/api/v1/models/nope/versions/1",
        "/api/v1/models/nope/versions",
    ):
        response = http.get(path)
        assert response.status_code == 404
        assert "nope" in response.json()["error"]["message"]


@pytest.mark.parametrize(
    "meta",
    [
        {"source": "file:///etc/passwd"},
        {"uri": "s3://other-project/models/1"},
        {"artifact_uri": "http://169.254.169.254/latest/meta-data/"},
        {"source": "/proc/self/root/etc/shadow"},
    ],
)
def test_cve_2023_1177_client_supplied_locations_are_refused(
    http: httpx.Client, model_files: Any, settings: Any, meta: dict[str, str]
) -> None:
    body = upload(http, "m", model_files.onnx, meta, expect=422)
    assert "location" in body["error"]["message"]
    _assert_nothing_registered(http, settings)


def test_version_create_without_a_file_is_refused(http: httpx.Client, settings: Any) -> None:
    # multipart with no file part (a form-encoded body is refused at the edge: 415)
    meta = json.dumps({"source": "file:///etc"})
    response = http.post("/api/v1/models/m/versions", files={"meta": (None, meta)})
    assert response.status_code == 400
    _assert_nothing_registered(http, settings)


@pytest.mark.parametrize(
    ("method", "path", "kwargs"),
    [
        (
            "post",
            "/api/v1/models",
            {"content": b"{not json", "headers": {"content-type": "application/json"}},
        ),
        ("post", "/api/v1/models", {"json": {"name": 5}}),
        ("put", "/api/v1/models/x/aliases/p", {"json": {"version": "abc"}}),
        ("get", "/api/v1/versions", {"params": {"metric": "f1 >> '; DROP TABLE models"}}),
        ("get", "/api/v1/models", {"params": {"limit": "-1"}}),
    ],
)
def test_cve_2025_23319_error_bodies_carry_a_message_and_request_id_but_no_internals(
    http: httpx.Client, method: str, path: str, kwargs: dict[str, Any], settings: Any
) -> None:
    response = getattr(http, method)(path, **kwargs)
    assert 400 <= response.status_code < 500
    error = response.json()["error"]
    assert error["message"] and error["request_id"] == response.headers["x-request-id"]
    text = response.text
    for leak in (
        "Traceback",
        'File "',
        str(settings.home),
        "site-packages",
        "SELECT",
        "sqlalchemy",
    ):
        assert leak not in text
