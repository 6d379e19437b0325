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
from collections.abc import Callable, Collection
from typing import TYPE_CHECKING, Any

from aimass.api.edge import HTTPError, bearer_secret, request_id_var
from aimass.api.inference.app import error_answer, find_version, model_failure
from aimass.api.inference.call import JSON, answer_headers, query_project, quote
from aimass.errors import AimassError, InvalidInput, Overloaded, Unavailable
from aimass.serving.batcher import BatcherClosed
from aimass.serving.protocol import encode_infer_response, parse_infer_request
from aimass.serving.runner import outputs_of

if TYPE_CHECKING:
    from aimass.api.inference.app import InferenceApp
    from aimass.serving.metrics import VersionMetrics
    from aimass.serving.protocol import InferRequest
    from aimass.serving.repository import ServedDeployment, ServedVersion

log = logging.getLogger("aimass.serving")

#: Writes a whole answer: status, body, headers.
Respond = Callable[[int, bytes, list[tuple[bytes, bytes]]], None]
_BINARY = b"application/octet-stream"


class DirectInfer:
    """Answers a /v2 infer request from its batch's callback, when it can without waiting."""

    def __init__(self, app: InferenceApp) -> None:
        self.app = app
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
        except (AimassError, ValueError):
            return False
        wanted: list[str] | None = None
        if request.outputs is not None:
            wanted = [out.name for out in request.outputs]
            known = {runner.predict_output, runner.proba_output}
            known.update(spec.name for spec in runner.output_specs)
            if any(out not in known for out in wanted):
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
            app, deployment, served, metrics, request, wanted, rows, request_id, started, respond
        )
        future.add_done_callback(answer)
        self.answered += 1
        return True


class _Answer:
    """What a queued request needs once its batch has run: the callback on its future."""

    __slots__ = (
        "app", "deployment", "metrics", "request", "request_id", "respond", "rows",
        "served", "started", "wanted",
    )  # fmt: skip

    def __init__(
        self,
        app: InferenceApp,
        deployment: ServedDeployment,
        served: ServedVersion,
        metrics: VersionMetrics,
        request: InferRequest,
        wanted: Collection[str] | None,
        rows: int,
        request_id: str,
        started: float,
        respond: Respond,
    ) -> None:
        self.app = app
        self.deployment = deployment
        self.served = served
        self.metrics = metrics
        self.request = request
        self.wanted = wanted
        self.rows = rows
        self.request_id = request_id
        self.started = started
        self.respond = respond

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
            for out in self.wanted or ():
                if out not in outputs:
                    raise InvalidInput(f"this model gives no output {quote(out)}")
        except Exception as exc:
            self._error(model_failure(exc, self.metrics, name, self.served, request_id))
            return
        try:
            payload, json_length = encode_infer_response(
                name, str(self.served.version), request.id, outputs, request.outputs,
                request.binary_output,
            )  # fmt: skip
            if json_length is None:
                headers = answer_headers(payload, request_id, JSON)
            else:
                length = (b"inference-header-content-length", str(json_length).encode())
                headers = answer_headers(payload, request_id, _BINARY, length)
        except Exception:
            log.exception("inference request failed (request id %s)", request_id)
            self._error(HTTPError(500, f"internal error (request id {request_id})"))
            return
        self.respond(200, payload, headers)
        self.metrics.request(200, time.perf_counter() - self.started)
        self.app.log_answer(
            self.deployment, self.served, request_id, request.inputs, outputs, self.started
        )

    def _error(self, error: HTTPError) -> None:
        body, extra = error_answer(self.request_id, error, plain=False)
        self.respond(error.status, body, answer_headers(body, self.request_id, JSON, *extra))
