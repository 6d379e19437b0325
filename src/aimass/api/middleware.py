"""The HTTP edge: one pure-ASGI guard in front of the whole process, control plane and inference.

In one pass over the headers it gives the request an id, checks that the Host
names this server (DNS rebinding), refuses writes a web page could forge (a
cross-site Origin or Sec-Fetch-Site, a form content type), caps the body
(counted as it arrives), adds the security headers to every answer, and
answers a 500 that still carries the request id when anything escapes the app.
Loopback is not a wall (SECURITY.md, item 12): all of it holds with auth on or
off. Read deadlines and the connection cap live one layer down, in
``api.connections``.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlsplit

import orjson
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from aimass.api.edge import (
    REQUEST_ID_KEY,
    RequestIds,
    declared_over,
    error_code,
    request_id_var,
    scope_headers,
    too_large,
)
from aimass.config import DEFAULT_MAX_JOB_FILE, Settings

log = logging.getLogger("aimass.api")

DEFAULT_MAX_BODY = 1024 * 1024
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "[::1]")
#: One policy for every page and answer: only this server's own scripts, no framing.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; font-src 'self'; worker-src 'self' blob:; object-src 'none'; "
    "base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
SECURITY_HEADERS: tuple[tuple[bytes, bytes], ...] = (
    (b"content-security-policy", CONTENT_SECURITY_POLICY.encode()),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
)
_NOSNIFF = (b"x-content-type-options", b"nosniff")
_APP_EXTRA_INFERENCE = list(SECURITY_HEADERS)
_CLOSE = (b"connection", b"close")
_UPLOAD_PATH = re.compile(r"/api/v1/(models|datasets)/[^/]+/versions/?|/api/v1/bundles/?")
# What a job sends as files: its checkpoints and kept files, and a script job's code.
_JOB_FILE_PATH = re.compile(
    r"/api/v1/jobs/script/?|/api/v1/jobs/[^/]+/attempts/[^/]+/(checkpoint|artifacts/[^/]+)"
)
_WRITES = frozenset({"POST", "PUT", "PATCH", "DELETE"})
# What an HTML form can send without a CORS preflight and the API never takes.
# multipart/form-data is the third: uploads need it, so it passes here and the
# Origin check below is what stops a form from another site.
_FORM_TYPES = frozenset({b"application/x-www-form-urlencoded", b"text/plain"})
_SAME_ORIGIN_FETCH = frozenset({b"same-origin", b"none"})
# Probes from orchestrators use the pod's address as Host; these answers reveal nothing.
_HOST_FREE = frozenset({"/v2/health/live", "/v2/health/ready"})
_DISCONNECT: Message = {"type": "http.disconnect"}
# Distinct Host headers whose check is remembered.
_MAX_HOSTS = 64


@dataclass(frozen=True)
class EdgePolicy:
    """What the guard enforces; ``allowed_hosts`` None means any Host (an explicit opt-out)."""

    allowed_hosts: frozenset[bytes] | None
    max_upload_bytes: int
    max_inference_bytes: int
    max_body_bytes: int = DEFAULT_MAX_BODY
    max_job_file_bytes: int = DEFAULT_MAX_JOB_FILE

    @classmethod
    def from_settings(cls, settings: Settings) -> EdgePolicy:
        """The policy for a server run with ``settings``."""
        return cls(
            allowed_hosts=allowed_hosts(settings),
            max_upload_bytes=settings.max_upload_bytes,
            max_inference_bytes=settings.max_inference_bytes,
            max_job_file_bytes=settings.max_job_file_bytes,
        )


def allowed_hosts(settings: Settings) -> frozenset[bytes] | None:
    """Host names this server answers to: loopback, its bind host, its public URL, and extras."""
    names = set(LOOPBACK_HOSTS)
    if settings.host not in ("0.0.0.0", "::", ""):
        names.add(_host_name(settings.host))
    if settings.public_url:
        public = urlsplit(settings.public_url).hostname
        if public:
            names.add(_host_name(public))
    for extra in settings.allowed_hosts.split(","):
        extra = extra.strip()
        if extra == "*":
            return None
        if extra:
            names.add(_host_name(extra))
    return frozenset(name.encode("idna") for name in names)


def _host_name(host: str) -> str:
    """``host`` lower-cased, without a port, IPv6 addresses in brackets (as in a Host header)."""
    host = host.strip().lower()
    if host.startswith("["):
        return host[: host.find("]") + 1]
    if host.count(":") > 1:
        return f"[{host}]"
    return host.partition(":")[0]


def _header_host(host: bytes) -> bytes:
    host = host.lower()
    if host[:1] == b"[":
        return host[: host.find(b"]") + 1]
    return host.partition(b":")[0]


class RequestGuard:
    """The edge of every HTTP request; ``is_inference(path)`` picks the inference path's limits.

    Refusals say what to do and carry the request id; a body over its limit
    (declared or counted as it arrives, chunked too) is a 413 answered at once
    with the connection closed, whatever the app would have said after.
    """

    def __init__(
        self, app: ASGIApp, policy: EdgePolicy, is_inference: Callable[[str], bool]
    ) -> None:
        self.app = app
        self.policy = policy
        self.is_inference = is_inference
        self.request_ids = RequestIds()
        # Each path kind's limit and refusal, written once (not per request).
        limit = policy.max_inference_bytes
        self._inference_limit = (
            limit,
            f"{too_large(limit)}; raise AIMASS_MAX_INFERENCE_BYTES for larger requests",
        )
        limit = policy.max_upload_bytes
        self._upload_limit = (
            limit,
            f"{too_large(limit)}; raise AIMASS_MAX_UPLOAD_BYTES for larger uploads",
        )
        limit = policy.max_job_file_bytes
        self._job_file_limit = (
            limit,
            f"{too_large(limit)}; raise AIMASS_MAX_JOB_FILE_BYTES for larger checkpoints, "
            "job artifacts and script sources",
        )
        limit = policy.max_body_bytes
        self._body_limit = (
            limit,
            f"{too_large(limit)}; send files as uploads, not inside a JSON body",
        )
        #: Host headers seen, and whether each names this server (bounded: cleared when full).
        self._hosts: dict[bytes, bool] = {}

    def _limit(self, method: str, path: str, inference: bool) -> tuple[int, str]:
        """The body limit for this request, and what to do about it in a refusal."""
        if inference:
            return self._inference_limit
        if method == "POST" and _UPLOAD_PATH.fullmatch(path):
            return self._upload_limit
        if method in ("POST", "PUT") and _JOB_FILE_PATH.fullmatch(path):
            return self._job_file_limit
        return self._body_limit

    def _allowed_host(self, host: bytes, allowed: frozenset[bytes]) -> bool:
        known = self._hosts.get(host)
        if known is None:
            known = _header_host(host) in allowed
            if len(self._hosts) >= _MAX_HOSTS:
                self._hosts.clear()
            self._hosts[host] = known
        return known

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        seen = scope_headers(scope)
        host, length, content_type = seen.host, seen.content_length, seen.content_type
        request_id = self.request_ids.assign(seen.request_id)
        scope[REQUEST_ID_KEY] = request_id
        token = request_id_var.set(request_id)
        path: str = scope["path"]
        method: str = scope["method"]
        inference = self.is_inference(path)
        v2 = path.startswith("/v2")
        extra = [(b"x-request-id", request_id.encode()), _NOSNIFF, *SECURITY_HEADERS]
        try:
            refusal = self.refusal(path, method, host, seen.origin, seen.fetch_site, content_type)
            if refusal is not None:
                status, message = refusal
                await guard_answer(send, status, message, request_id, v2, extra)
                return
            limits = self._limit(method, path, inference)
            if declared_over(length, limits[0]):
                await guard_answer(send, 413, limits[1], request_id, v2, extra)
                return
            await self._serve(
                scope, receive, send, request_id, limits, v2, extra,
                # The inference path sets its own id and nosniff headers (it runs alone too).
                _APP_EXTRA_INFERENCE if inference else extra,
                has_body=seen.chunked or (length is not None and length != b"0"),
            )  # fmt: skip
        finally:
            request_id_var.reset(token)

    def refusal(
        self,
        path: str,
        method: str,
        host: bytes | None,
        origin: bytes | None,
        fetch_site: bytes | None,
        content_type: bytes | None,
    ) -> tuple[int, str] | None:
        """Why this request may not go on (status, message), or None."""
        allowed = self.policy.allowed_hosts
        if allowed is not None and path not in _HOST_FREE:
            if host is None:
                return 400, "the request has no Host header; send one"
            if not self._allowed_host(host, allowed):
                shown = host[:100].decode("latin-1")
                return 403, (
                    f"this server does not answer to the host {shown!r} (a DNS-rebinding "
                    "guard); use 127.0.0.1 or the name it was started with, or add the name "
                    "to AIMASS_ALLOWED_HOSTS"
                )  # fmt: skip
        if method not in _WRITES:
            return None
        if fetch_site is not None and fetch_site.lower() not in _SAME_ORIGIN_FETCH:
            return 403, (
                "a web page from another site may not change anything here (Sec-Fetch-Site: "
                f"{fetch_site[:32].decode('latin-1')}); use the aimass CLI or SDK, or a page "
                "served by this server"
            )  # fmt: skip
        if origin is not None and not _same_origin(origin, host):
            return 403, (
                f"a web page from another origin ({origin[:100].decode('latin-1')}) may not "
                "change anything here; use the aimass CLI or SDK, or a page served by this server"
            )  # fmt: skip
        if content_type is not None:
            media = content_type.partition(b";")[0].strip().lower()
            if media in _FORM_TYPES:
                return 415, (
                    f"writes do not take {media.decode('latin-1')!r} bodies; send JSON "
                    "(Content-Type: application/json) or, for files, multipart/form-data"
                )  # fmt: skip
        return None

    async def _serve(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        request_id: str,
        limits: tuple[int, str],
        v2: bool,
        extra: list[tuple[bytes, bytes]],
        app_extra: list[tuple[bytes, bytes]],
        *,
        has_body: bool,
    ) -> None:
        limit, refusal_413 = limits
        started = answered = False
        body_done = not has_body
        received = 0

        async def guarded_send(message: Message) -> None:
            nonlocal started
            if answered:
                return  # the guard has answered this request already (413)
            if not started and message["type"] == "http.response.start":
                started = True
                message["headers"] = [*message.get("headers", ()), *app_extra]
            await send(message)

        async def answer_early(status: int, message: str) -> Message:
            nonlocal answered
            if not started:
                await guard_answer(send, status, message, request_id, v2, extra)
            answered = True
            return _DISCONNECT  # the app sees a client that went away, and stops

        async def guarded_receive() -> Message:
            nonlocal received, body_done
            if body_done or answered:
                return _DISCONNECT if answered else await receive()
            message = await receive()
            if message["type"] != "http.request":
                body_done = True
                return message
            received += len(message.get("body", b""))
            if received > limit:
                return await answer_early(413, refusal_413)
            if not message.get("more_body", False):
                body_done = True
            return message

        try:
            await self.app(scope, guarded_receive, guarded_send)
        except Exception:
            if answered:
                return
            if started:
                # The app's own error handling (FastAPI's) has answered and logged it.
                log.debug("error after the answer began (request id %s)", request_id)
                return
            log.exception("unhandled error (request id %s)", request_id)
            await guard_answer(
                send, 500, "internal error; quote the request id", request_id, v2, extra
            )


def _same_origin(origin: bytes, host: bytes | None) -> bool:
    if host is None:
        return False
    origin = origin.lower()
    host = host.lower()
    return origin == b"http://" + host or origin == b"https://" + host


async def guard_answer(
    send: Send,
    status: int,
    message: str,
    request_id: str,
    v2: bool,
    extra: list[tuple[bytes, bytes]],
) -> None:
    """The guard's own answer, in the shape of the path's API, closing the connection."""
    if v2:
        body = orjson.dumps({"error": message})
    else:
        code = error_code(status)
        body = orjson.dumps({"error": {"code": code, "message": message, "request_id": request_id}})
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        _CLOSE,
        *extra,
    ]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
