"""The fast path of a plain JSON /v2 infer request: the edge's checks inline, no ASGI cycle.

The connection layer (``api.connections``) hands this module the hot request of
the serving path (``POST /v2/models/{name}[/versions/{v}]/infer`` over HTTP/1.1
keep-alive, a JSON body of known length under ``MAX_BODY`` bytes, no binary tensor
header) once its whole body is in. ``FastInfer.run`` then does what the edge guard
(``api.middleware.RequestGuard``) does for it, the same checks on the same headers
and the same request id, and calls the inference app with a ready body and a
``send`` that writes the answer straight to the socket: no guard wrappers, no
``receive`` wait, no uvicorn header validation. Everything the answer says, errors
included (bad token, unknown model, malformed tensor, overload), comes from the
same ``InferenceApp`` code, so it is the slow path's answer byte for byte (the
``date`` header aside). Anything the guard would refuse or treat apart is not
taken: ``run`` returns False before any work and the caller serves the request
the normal way. Before ``run``, ``run_now`` tries ``DirectInfer`` (``api.inference.direct``):
the common request, its token's check cached, is queued in its model's batcher at once
and answered from the batch's callback, with no task.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from aimass.api.edge import (
    REQUEST_ID_KEY,
    Message,
    RequestHeaders,
    Scope,
    Send,
    declared_over,
    read_headers,
    request_id_var,
    scope_headers,
)
from aimass.api.inference.direct import DirectInfer, Respond
from aimass.api.middleware import SECURITY_HEADERS, RequestGuard, guard_answer

if TYPE_CHECKING:
    from aimass.api.inference.app import InferenceApp

log = logging.getLogger("aimass.api")

#: The largest body taken on the fast path (bytes): it is held whole before the app
#: runs, so it stays below uvicorn's read-pause mark (64 KiB); larger ones go the
#: normal way, read as they arrive.
MAX_BODY = 60_000
_DISCONNECT: Message = {"type": "http.disconnect"}
_NOSNIFF = (b"x-content-type-options", b"nosniff")


def fast_candidate(method: bytes, path: bytes) -> bool:
    """Whether a request line may be served on the fast path (the headers decide next)."""
    return (
        method == b"POST"
        and path.startswith(b"/v2/models/")
        and path.endswith(b"/infer")
        and b"%" not in path
    )


class FastInfer:
    """Serves the hot /v2 infer request with the guard's checks and the inference app.

    ``fits(headers)`` is asked once the headers are in (the body is then held whole);
    ``run(scope, body, send)`` once the body is in, and returns False (nothing sent,
    nothing counted) where the normal path must answer.
    """

    def __init__(self, guard: RequestGuard, inference: InferenceApp) -> None:
        self.guard = guard
        self.inference = inference
        self.direct = DirectInfer(inference, SECURITY_HEADERS)
        self._limit = min(guard.policy.max_inference_bytes, MAX_BODY)
        #: Requests this path has taken (answered through the inference app) since start.
        self.taken = 0

    def fits(self, headers: list[tuple[bytes, bytes]]) -> RequestHeaders | None:
        """The request's headers (read once, for ``run``) when its body has one known small
        length and no binary tensor header; else None."""
        seen = read_headers(headers)
        length = seen.content_length
        if (
            seen.lengths != 1
            or seen.chunked
            or seen.header_length is not None
            or length is None
            or not length.isdigit()
            or int(length) > self._limit
        ):
            return None
        return seen

    def request_id(self, headers: list[tuple[bytes, bytes]]) -> str:
        """The id the guard gives a request with these headers (for an answer written
        before the request reached the guard: a body that stopped arriving)."""
        given = next((value for key, value in headers if key == b"x-request-id"), None)
        return self.guard.request_ids.assign(given)

    def _admits(self, scope: Scope) -> RequestHeaders | None:
        """The request's headers if the guard lets it through untouched; else None."""
        guard = self.guard
        seen = scope_headers(scope)
        path: str = scope["path"]
        if not guard.is_inference(path) or declared_over(
            seen.content_length, guard.policy.max_inference_bytes
        ):
            return None
        refusal = guard.refusal(
            path, scope["method"], seen.host, seen.origin, seen.fetch_site, seen.content_type
        )
        return seen if refusal is None else None

    def run_now(self, scope: Scope, body: bytes, respond: Respond) -> bool:
        """Queue the request and answer it through ``respond`` (the guard's headers added)
        once its batch has run, with no task (``DirectInfer``); False where ``run`` must
        answer it (having done nothing but, if the guard admits it, give it its id)."""
        seen = self._admits(scope)
        if seen is None:
            return False
        request_id = self.guard.request_ids.assign(seen.request_id)
        scope[REQUEST_ID_KEY] = request_id  # admitted: ``run`` answers with the same id
        taken = self.direct.start(
            scope["path"], scope["query_string"], seen.authorization, body, request_id, respond
        )
        if taken:
            self.taken += 1
        return taken

    async def run(self, scope: Scope, body: bytes, send: Send) -> bool:
        """Answer the request through ``send``; False, having done nothing, if the guard
        would refuse it or treat it apart (then the normal path answers it)."""
        request_id: str | None = scope.get(REQUEST_ID_KEY)
        if request_id is None:  # not admitted by ``run_now`` yet
            seen = self._admits(scope)
            if seen is None:
                return False
            request_id = self.guard.request_ids.assign(seen.request_id)
            scope[REQUEST_ID_KEY] = request_id
        self.taken += 1
        token = request_id_var.set(request_id)
        started = False
        delivered = False

        async def receive() -> Message:
            nonlocal delivered
            if delivered:
                return _DISCONNECT
            delivered = True
            return {"type": "http.request", "body": body, "more_body": False}

        async def watched(message: Message) -> None:
            nonlocal started
            if not started:  # the guard's headers on the app's answer, as ``guarded_send``
                started = True
                message["headers"] = [*message.get("headers", ()), *SECURITY_HEADERS]
            await send(message)

        try:
            await self.inference(scope, receive, watched)
        except Exception:
            if not started:  # as the guard does for an error that escapes the app
                log.exception("unhandled error (request id %s)", request_id)
                extra = [(b"x-request-id", request_id.encode()), _NOSNIFF, *SECURITY_HEADERS]
                await guard_answer(
                    send, 500, "internal error; quote the request id", request_id, True, extra
                )
            else:
                log.debug("error after the answer began (request id %s)", request_id)
        finally:
            request_id_var.reset(token)
        return True
