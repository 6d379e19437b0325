"""What every HTTP answer of this server shares, control plane and inference path alike.

The error table (status -> stable code), request ids, bearer parsing, body
caps and the ASGI types. Plain Python on purpose: the inference path imports it
and must stay free of any framework, and nothing here adds work per request
beyond what each path did on its own before.
"""

from __future__ import annotations

import itertools
import os
import re
from collections.abc import Awaitable, Callable, MutableMapping
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

#: ASGI's types, as plain mappings and callables.
Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

#: The stable ``error.code`` for each status an answer may carry.
STATUS_CODES: dict[int, str] = {
    400: "invalid_input",
    401: "unauthenticated",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "too_large",
    415: "unsupported_media_type",
    422: "unprocessable",
    429: "overloaded",
    500: "internal",
    503: "unavailable",
    507: "insufficient_storage",
}

#: Where the edge guard leaves the request id in the scope, for apps that answer on their own.
REQUEST_ID_KEY = "aimass.request_id"
#: Where the first reader of a request's headers leaves them (``RequestHeaders``).
HEADERS_KEY = "aimass.headers"
#: The request id of the request being answered (for error bodies and logs).
request_id_var: ContextVar[str] = ContextVar("aimass_request_id", default="-")

_REQUEST_ID = re.compile(r"[A-Za-z0-9._-]{8,64}")
_EMPTY = b""


@dataclass(slots=True)
class RequestHeaders:
    """The headers the edge guard, the fast path and the inference app read (None where
    absent; the last one where sent twice), from one pass over a request's."""

    host: bytes | None = None
    content_length: bytes | None = None
    content_type: bytes | None = None
    origin: bytes | None = None
    fetch_site: bytes | None = None
    request_id: bytes | None = None
    authorization: bytes | None = None
    #: ``Inference-Header-Content-Length`` (binary tensor extension).
    header_length: bytes | None = None
    #: A ``Transfer-Encoding`` was sent.
    chunked: bool = False
    #: How many ``Content-Length`` headers were sent.
    lengths: int = 0


def read_headers(headers: list[tuple[bytes, bytes]]) -> RequestHeaders:
    """One pass over a request's headers (names lower-case, as ASGI servers give them)."""
    seen = RequestHeaders()
    for key, value in headers:
        if key == b"host":
            seen.host = value
        elif key == b"content-length":
            seen.content_length = value
            seen.lengths += 1
        elif key == b"content-type":
            seen.content_type = value
        elif key == b"authorization":
            seen.authorization = value
        elif key == b"origin":
            seen.origin = value
        elif key == b"sec-fetch-site":
            seen.fetch_site = value
        elif key == b"x-request-id":
            seen.request_id = value
        elif key == b"inference-header-content-length":
            seen.header_length = value
        elif key == b"transfer-encoding":
            seen.chunked = True
    return seen


def scope_headers(scope: Scope) -> RequestHeaders:
    """The request's headers as read once: left in the scope by the first caller."""
    seen: RequestHeaders | None = scope.get(HEADERS_KEY)
    if seen is None:
        seen = read_headers(scope["headers"])
        scope[HEADERS_KEY] = seen
    return seen


def error_code(status: int) -> str:
    """The stable code for ``status`` (``"error"`` for one outside the table)."""
    return STATUS_CODES.get(status, "error")


class HTTPError(Exception):
    """An answer other than 200, with a message safe to show the caller."""

    def __init__(
        self, status: int, message: str, *, close: bool = False, retry_after: int | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.close = close
        self.retry_after = retry_after


class RequestIds:
    """Gives each request its id: the caller's ``X-Request-Id`` when sane, else a new one."""

    def __init__(self) -> None:
        self._prefix = os.urandom(4).hex()
        self._ids = itertools.count(1)

    def assign(self, given: bytes | None) -> str:
        """``given`` if it is 8 to 64 characters of ``[A-Za-z0-9._-]``, else a fresh id."""
        if given is not None:
            text = given.decode("latin-1")
            if _REQUEST_ID.fullmatch(text):
                return text
        return f"{self._prefix}{next(self._ids):08x}"


def bearer_secret(authorization: bytes | None) -> str | None:
    """The secret of ``Authorization: Bearer <secret>`` (maybe empty); None for another scheme."""
    if authorization is None or authorization[:7].lower() != b"bearer ":
        return None
    return authorization[7:].strip().decode("latin-1")


def too_large(limit: int, setting: str | None = None) -> str:
    """The refusal of a body over ``limit`` bytes, naming the ``setting`` that raises it."""
    message = f"request body is over the limit of {limit} bytes"
    return f"{message}; raise {setting} for larger requests" if setting else message


def declared_over(content_length: bytes | None, limit: int) -> bool:
    """True when a Content-Length is not a number or says more than ``limit`` bytes."""
    return content_length is not None and (
        not content_length.isdigit() or int(content_length) > limit
    )


async def read_body(
    receive: Receive, content_length: bytes | None, limit: int, setting: str | None = None
) -> bytes:
    """Read the whole body; over ``limit`` (declared, or counted as it arrives) is a 413."""
    if declared_over(content_length, limit):
        raise HTTPError(413, too_large(limit, setting), close=True)
    message = await receive()
    body: bytes = message.get("body", _EMPTY)
    total = len(body)
    if total > limit:
        raise HTTPError(413, too_large(limit, setting), close=True)
    if not message.get("more_body", False):
        return body
    chunks = [body]
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise HTTPError(400, "the client went away before sending the whole body", close=True)
        chunk: bytes = message.get("body", _EMPTY)
        total += len(chunk)
        if total > limit:
            raise HTTPError(413, too_large(limit, setting), close=True)
        chunks.append(chunk)
        if not message.get("more_body", False):
            return _EMPTY.join(chunks)
