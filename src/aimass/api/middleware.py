"""Pure ASGI guard: request ids, body-size limits counted as bytes arrive, safe headers."""

from __future__ import annotations

import re
import uuid

import orjson
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from aimass.api.context import request_id_var
from aimass.errors import TooLarge

DEFAULT_MAX_BODY = 1024 * 1024
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{8,64}$")
_UPLOAD_PATH = re.compile(r"^/api/v1/(models|datasets)/[^/]+/versions/?$|^/api/v1/bundles/?$")


class BodyTooLarge(TooLarge):
    """Raised from ``receive`` when a body passes its limit mid-stream."""


class RequestGuard:
    """Tags each request with an id, caps its body and adds security headers.

    The cap is checked against Content-Length before anything is read, and
    counted on every chunk that arrives, so a chunked body cannot slip past it.
    """

    def __init__(self, app: ASGIApp, max_upload_bytes: int, max_body_bytes: int = DEFAULT_MAX_BODY):
        self.app = app
        self.max_upload_bytes = max_upload_bytes
        self.max_body_bytes = max_body_bytes

    def _limit(self, scope: Scope) -> int:
        if scope["method"] == "POST" and _UPLOAD_PATH.match(scope["path"]):
            return self.max_upload_bytes
        return self.max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        given = headers.get(b"x-request-id", b"").decode("latin-1")
        request_id = given if _REQUEST_ID.match(given) else uuid.uuid4().hex
        token = request_id_var.set(request_id)
        limit = self._limit(scope)
        started = False

        async def send_with_headers(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                extra = [
                    (b"x-request-id", request_id.encode()),
                    (b"x-content-type-options", b"nosniff"),
                ]
                message["headers"] = list(message.get("headers", [])) + extra
            await send(message)

        try:
            length = headers.get(b"content-length")
            if length is not None and (not length.isdigit() or int(length) > limit):
                await self._too_large(send_with_headers, request_id, limit)
                return
            received = 0

            async def counted_receive() -> Message:
                nonlocal received
                message = await receive()
                if message["type"] == "http.request":
                    received += len(message.get("body", b""))
                    if received > limit:
                        raise BodyTooLarge(_too_large_message(limit))
                return message

            try:
                await self.app(scope, counted_receive, send_with_headers)
            except BodyTooLarge:
                if not started:
                    await self._too_large(send_with_headers, request_id, limit)
        finally:
            request_id_var.reset(token)

    @staticmethod
    async def _too_large(send: Send, request_id: str, limit: int) -> None:
        body = orjson.dumps(
            {
                "error": {
                    "code": "too_large",
                    "message": _too_large_message(limit),
                    "request_id": request_id,
                }
            }
        )
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                    (b"connection", b"close"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})


def _too_large_message(limit: int) -> str:
    return (
        f"request body is over the limit of {limit} bytes; "
        "raise AIMASS_MAX_UPLOAD_BYTES for larger uploads"
    )
