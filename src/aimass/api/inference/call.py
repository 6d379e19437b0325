"""One inference request as the route handlers see it, and the small helpers they share.

``Call`` carries what the ASGI entry read once (the path split, the headers that
matter, the request id, the start time), so the /v2, predict and OpenAI handlers
take one argument instead of nine. ``answer`` writes a whole JSON (or other) body
with the path's fixed headers.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import parse_qsl

from aimass.api.edge import HTTPError, Receive, Scope, Send

JSON = b"application/json"
NOSNIFF = (b"x-content-type-options", b"nosniff")
EMPTY = b""
_PROJECT = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
_MAX_NAME = 128


@dataclass(slots=True)
class Call:
    """One request on the inference path: its ASGI channel and what its headers said."""

    scope: Scope
    receive: Receive
    send: Send
    request_id: str
    #: The path split on "/" (trailing "/" dropped): ``["", "v2", "models", name, ...]``.
    parts: list[str]
    method: str
    authorization: bytes | None
    content_length: bytes | None
    #: ``Inference-Header-Content-Length`` (binary tensor extension), if sent.
    header_length: bytes | None
    #: ``time.perf_counter()`` when the request reached the app.
    started: float

    def project(self) -> str:
        """The ``?project=`` query parameter (default ``default``), or a 400."""
        return query_project(self.scope.get("query_string", EMPTY))

    async def answer(
        self, status: int, body: bytes, content_type: bytes = JSON, *extra: tuple[bytes, bytes]
    ) -> None:
        """Send a whole answer with the path's fixed headers."""
        await answer(self.send, status, body, self.request_id, content_type, *extra)


def query_project(query: bytes) -> str:
    """The project a query string names (``?project=``; default ``default``), or a 400."""
    if not query:
        return "default"
    for key, value in parse_qsl(query.decode("latin-1")):
        if key == "project":
            if not _PROJECT.fullmatch(value):
                raise HTTPError(400, "the project parameter is not a valid project name")
            return value
    return "default"


async def answer(
    send: Send,
    status: int,
    body: bytes,
    request_id: str,
    content_type: bytes,
    *extra: tuple[bytes, bytes],
) -> None:
    """Send ``body`` whole: content type and length, the request id, nosniff, ``extra``."""
    headers = answer_headers(body, request_id, content_type, *extra)
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def answer_headers(
    body: bytes, request_id: str, content_type: bytes, *extra: tuple[bytes, bytes]
) -> list[tuple[bytes, bytes]]:
    """The headers of a whole answer: content type and length, the request id, nosniff,
    ``extra``."""
    headers = [
        (b"content-type", content_type),
        (b"content-length", str(len(body)).encode()),
        (b"x-request-id", request_id.encode()),
        NOSNIFF,
    ]
    if extra:
        headers.extend(extra)
    return headers


def allow(method: str, allowed: str) -> None:
    """A 405 unless ``method`` is ``allowed``."""
    if method != allowed:
        raise HTTPError(405, f"method {method[:16]} is not allowed here; use {allowed}")


def quote(name: str) -> str:
    """A caller-given name for an error message: repr'd and cut short."""
    return repr(name[:_MAX_NAME])
