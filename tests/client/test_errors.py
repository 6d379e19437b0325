"""How the SDK turns server answers and network failures into aimass errors (no server)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from tests.conftest import free_port

from aimass import Client
from aimass.client import ServerUnreachable
from aimass.errors import (
    AimassError,
    ChecksumMismatch,
    Conflict,
    NotFound,
    TooLarge,
    Unauthenticated,
)


def _client(handler: Callable[[httpx.Request], httpx.Response], token: str | None = "t") -> Client:
    return Client(url="http://aimass.test", token=token, transport=httpx.MockTransport(handler))


def _error(status: int, code: str, message: str) -> Callable[[httpx.Request], httpx.Response]:
    def handler(_request: httpx.Request) -> httpx.Response:
        body = {"error": {"code": code, "message": message, "request_id": "req-1"}}
        return httpx.Response(status, json=body, headers={"X-Request-ID": "req-1"})

    return handler


@pytest.mark.parametrize(
    ("status", "code", "cls"),
    [(404, "not_found", NotFound), (409, "conflict", Conflict), (413, "too_large", TooLarge)],
)
def test_error_code_selects_the_error_class(status: int, code: str, cls: type[AimassError]) -> None:
    client = _client(_error(status, code, "model 'x' not found"))
    with client, pytest.raises(cls) as info:
        client.models.get("x")
    assert info.value.message == "model 'x' not found"
    assert info.value.status == status
    assert info.value.request_id == "req-1"  # type: ignore[attr-defined]


def test_unknown_body_falls_back_to_the_status() -> None:
    def handler(_request: httpx.Request) -> httpx.Response:
        return httpx.Response(404, text="nope", headers={"X-Request-ID": "r2"})

    with _client(handler) as client, pytest.raises(NotFound) as info:
        client.models.get("x")
    assert info.value.request_id == "r2"  # type: ignore[attr-defined]
    assert "404" in info.value.message


def test_missing_token_is_hinted_on_401(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AIMASS_TOKEN", raising=False)
    monkeypatch.setenv("AIMASS_HOME", str(tmp_path))
    client = _client(_error(401, "unauthenticated", "a token is required"), token=None)
    with client, pytest.raises(Unauthenticated, match="AIMASS_TOKEN"):
        client.whoami()


def test_sends_bearer_token_and_project() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json=[])

    with Client(
        url="http://aimass.test/",
        token="secret",
        project="vision",
        transport=httpx.MockTransport(handler),
    ) as client:
        assert client.models.list(tag={"team": "cv"}) == []
    assert seen[0].headers["authorization"] == "Bearer secret"
    assert seen[0].url.params["project"] == "vision"
    assert seen[0].url.params.get_list("tag") == ["team=cv"]


def test_names_are_escaped_in_the_path() -> None:
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.url.raw_path.decode())
        return httpx.Response(404, json={"error": {"code": "not_found", "message": "no"}})

    with _client(handler) as client, pytest.raises(NotFound):
        client.models.get("../tokens")
    assert seen[0].startswith("/api/v1/models/..%2Ftokens")


def test_list_follows_pages() -> None:
    offsets: list[int] = []

    def handler(request: httpx.Request) -> httpx.Response:
        offset = int(request.url.params["offset"])
        offsets.append(offset)
        count = 1000 if offset == 0 else 3
        return httpx.Response(200, json=[{"id": offset + i} for i in range(count)])

    with _client(handler) as client:
        items = client._http.get_all("/api/v1/models")
    assert len(items) == 1003
    assert offsets == [0, 1000]


def test_download_with_wrong_checksum_raises_and_leaves_nothing(tmp_path: Path) -> None:
    def handler(_request: httpx.Request) -> httpx.Response:
        return httpx.Response(
            200,
            content=b"model bytes",
            headers={
                "X-Aimass-Sha256": "0" * 64,
                "Content-Disposition": 'attachment; filename="m.onnx"',
            },
        )

    with _client(handler) as client, pytest.raises(ChecksumMismatch):
        client.models.download("m", 1, tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_download_keeps_only_the_base_of_the_served_name(tmp_path: Path) -> None:
    def handler(_request: httpx.Request) -> httpx.Response:
        return httpx.Response(
            200,
            content=b"abc",
            headers={"Content-Disposition": 'attachment; filename="../../evil.onnx"'},
        )

    with _client(handler) as client:
        path = client.models.download("m", 1, tmp_path)
    assert path == tmp_path / "evil.onnx"
    assert path.read_bytes() == b"abc"


def test_unreachable_server_says_how_to_start_one() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    with Client(url=url, token="t", timeout=5) as client, pytest.raises(ServerUnreachable) as info:
        client.whoami()
    assert isinstance(info.value, AimassError)
    assert url in info.value.message
    assert "aimass server" in info.value.message
