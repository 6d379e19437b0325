"""The hot /v2 infer request answered with no task: queued on the spot, answered from its batch.

The fast path (``api.fastpath``) hands ``DirectInfer.start`` a plain JSON
``POST /v2/models/{name}[/versions/{v}]/infer`` whose body is in. When everything
the request needs is at hand without waiting (its token's check is cached and
accepted, its deployment serves from a batching runner with room in its queue, and
its tensors parse), the request is parsed and queued in the runner's batcher right
there, and its answer is written by a callback on the batch's future: no task, no
coroutine chain, no ASGI messages. The batch itself is formed and run as for every
other request. Anything else (a token not checked in the last seconds, an unknown
model, a malformed tensor, a full queue, a runner without a batcher) returns False
before any effect, and the inference app answers it the usual way, so every error
an unusual request meets is that app's answer, byte for byte. Failures once the
request is queued (the model raised, the request waited past its bound) are mapped
by the same ``model_failure`` the app uses.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from aimass.api.edge import HTTPError, bearer_secret, request_id_var
from aimass.api.inference.app import (
    check_given,
    error_answer,
    find_version,
    infer_answer,
    model_failure,
    requested_outputs,
)
from aimass.api.inference.call import JSON, answer_headers, query_project
from aimass.errors import AimassError, Overloaded, Unavailable
from aimass.serving.batcher import BatcherClosed
from aimass.serving.protocol import parse_infer_request
from aimass.serving.runner import outputs_of

if TYPE_CHECKING:
    from aimass.api.inference.app import InferenceApp
    from aimass.serving.metrics import VersionMetrics
    from aimass.serving.protocol import InferRequest
    from aimass.serving.repository import ServedDeployment, ServedVersion

log = logging.getLogger("aimass.serving")

#: Writes a whole answer: status, body, headers.
Respond = Callable[[int, bytes, list[tuple[bytes, bytes]]], None]
Headers = tuple[tuple[bytes, bytes], ...]


class DirectInfer:
    """Answers a /v2 infer request from its batch's callback, when it can without waiting.

    ``extra_headers`` go on every answer (the edge guard's security headers).
    """

    def __init__(self, app: InferenceApp, extra_headers: Headers = ()) -> None:
        self.app = app
        self.extra_headers = extra_headers
        #: Requests answered this way since start.
        self.answered = 0

    def start(
        self,
        path: str,
        query: bytes,
        authorization: bytes | None,
        body: bytes,
        request_id: str,
        respond: Respond,
    ) -> bool:
        """Queue the request and answer it through ``respond`` once its batch has run;
        False, having done nothing, where the inference app must answer it."""
        started = time.perf_counter()
        parts = path.split("/")  # ["", "v2", "models", name, ("versions", v,) "infer"]
        count = len(parts)
        if count == 5:
            version = None
        elif count == 7 and parts[4] == "versions":
            version = parts[5]
        else:
            return False
        name = parts[3]
        if not name or parts[-1] != "infer" or parts[1] != "v2" or parts[2] != "models":
            return False
        app = self.app
        try:
            project = query_project(query)
        except HTTPError:
            return False
        if app.auth_enabled:
            secret = None if authorization is None else bearer_secret(authorization)
            principal = app.auth.cached(secret) if secret else None
        else:
            principal = app.anonymous
        if principal is None or not principal.can("viewer", project):
            return False
        deployment = app.repository.get(name, project)
        if deployment is None or not deployment.versions:
            return False
        served = deployment.pick() if version is None else find_version(deployment, version)
        if served is None:
            return False
        runner = served.runner
        enqueue = getattr(runner, "enqueue", None)
        if enqueue is None or getattr(runner, "full", False):
            return False
        try:
            request = parse_infer_request(body, None, served.signature, app.max_tensor_elements)
            wanted = requested_outputs(runner, request)
        except (AimassError, ValueError):
            return False
        metrics = runner.metrics or app.bind_metrics(deployment, served)
        try:
            queued = enqueue(request.inputs, wanted)
        except (BatcherClosed, Overloaded):
            return False
        if queued is None:
            return False
        future, rows = queued
        answer = _Answer(
            self, deployment, served, metrics, request, wanted, rows, request_id, started,
            respond,
        )  # fmt: skip
        future.add_done_callback(answer)
        self.answered += 1
        return True


@dataclass(slots=True)
class _Answer:
    """What a queued request needs once its batch has run: the callback on its future."""

    direct: DirectInfer
    deployment: ServedDeployment
    served: ServedVersion
    metrics: VersionMetrics
    request: InferRequest
    wanted: list[str] | None
    rows: int
    request_id: str
    started: float
    respond: Respond

    def __call__(self, future: asyncio.Future[Any]) -> None:
        token = request_id_var.set(self.request_id)
        try:
            self._answer(future)
        finally:
            request_id_var.reset(token)

    def _answer(self, future: asyncio.Future[Any]) -> None:
        request, request_id, name = self.request, self.request_id, self.deployment.name
        try:
            if future.cancelled():  # its batch was cancelled: the server is stopping
                raise Unavailable("the server is stopping; try again soon")
            outputs = outputs_of(future.result(), self.rows)
            check_given(outputs, self.wanted)
        except Exception as exc:
            self._error(model_failure(exc, self.metrics, name, self.served, request_id))
            return
        try:
            payload, content_type, extra = infer_answer(name, self.served, request, outputs)
        except Exception:
            log.exception("inference request failed (request id %s)", request_id)
            self._error(HTTPError(500, f"internal error (request id {request_id})"))
            return
        self._send(200, payload, content_type, *extra)
        self.metrics.request(200, time.perf_counter() - self.started)
        self.direct.app.log_answer(
            self.deployment, self.served, request_id, request.inputs, outputs, self.started
        )

    def _error(self, error: HTTPError) -> None:
        body, extra = error_answer(self.request_id, error, plain=False)
        self._send(error.status, body, JSON, *extra)

    def _send(
        self, status: int, body: bytes, content_type: bytes, *extra: tuple[bytes, bytes]
    ) -> None:
        headers = answer_headers(body, self.request_id, content_type, *extra)
        headers.extend(self.direct.extra_headers)
        self.respond(status, body, headers)
