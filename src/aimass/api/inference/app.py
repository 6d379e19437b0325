"""The lean inference path: a plain ASGI app for /v2, /metrics and the JSON predict route.

No framework sits on this path: routes are found by splitting the path, headers
are read in one pass, constant answers and headers are encoded once, auth is a
cached hash look-up, and bodies are counted against their limit as they arrive.
The error table, request ids, bearer parsing and body caps are the control
plane's too (``api.edge``); the models, batching and protocol are ``serving``'s.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, TypeVar

from aimass.api.edge import (
    REQUEST_ID_KEY,
    HTTPError,
    Receive,
    RequestIds,
    Scope,
    Send,
    bearer_secret,
    error_code,
    read_body,
    scope_headers,
)
from aimass.api.inference.call import EMPTY, JSON, Call, allow, answer, quote
from aimass.api.inference.openai import dispatch as openai_dispatch
from aimass.auth.cache import AuthCache
from aimass.auth.entities import Principal
from aimass.errors import AimassError, InvalidInput, Overloaded, Unauthenticated, Unavailable
from aimass.monitoring.prediction_log import PredictionLog
from aimass.serving.batcher import BatcherClosed
from aimass.serving.generation import GenerationLimits, Generations
from aimass.serving.metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE
from aimass.serving.metrics import InferenceMetrics, VersionMetrics
from aimass.serving.protocol import (
    dumps,
    encode_infer_response,
    parse_infer_request,
    parse_predict,
    spec_json,
    to_json_value,
)

if TYPE_CHECKING:
    from aimass.serving.protocol import Array, InferRequest
    from aimass.serving.repository import ModelRepository, ServedDeployment, ServedVersion
    from aimass.serving.runner import Runner

log = logging.getLogger("aimass.serving")
_T = TypeVar("_T")

_BINARY = b"application/octet-stream"
_CLOSE = (b"connection", b"close")
_METRICS_TYPE = METRICS_CONTENT_TYPE.encode()
#: Seconds a refused caller should wait: a full queue drains in milliseconds to seconds.
_RETRY_AFTER = (b"retry-after", b"1")


class InferenceApp:
    """The ASGI app of the inference path; ``handles(path)`` says which paths are its.

    Routes: ``GET /v2/health/live`` and ``/v2/health/ready`` (no token; ready is 503
    until ``ready()`` holds, i.e. the server's deployments are loaded), ``GET /v2``,
    ``GET /v2/models/{name}[/versions/{v}]`` and ``.../ready``, ``POST .../infer``,
    ``GET /metrics`` and ``POST /api/v1/deployments/{name}/predict``. Deployments
    are looked up in ``repository`` by name and the ``?project=`` query parameter
    (default ``default``). With ``auth_enabled`` every route but the health probes
    needs a bearer token whose principal may view the project (``/metrics``: all
    projects). Errors answer ``{"error": "..."}`` on /v2 and
    ``{"error": {"code", "message", "request_id"}}`` under /api/v1; none carries
    a traceback, a path or an internal name. Call it only for paths it handles.
    """

    def __init__(
        self,
        repository: ModelRepository,
        authenticate: Callable[[str | None], Principal] | AuthCache,
        auth_enabled: bool,
        max_body_bytes: int,
        max_tensor_elements: int,
        server_version: str,
        *,
        metrics: InferenceMetrics | None = None,
        auth_ttl_s: float = 2.0,
        prediction_log: PredictionLog | None = None,
        generation: GenerationLimits | None = None,
        ready: Callable[[], bool] | None = None,
    ) -> None:
        self.repository = repository
        #: Whether this server may take traffic (a load balancer's check); None: always.
        self.ready = ready
        #: Where answered predictions are queued (sampled); None logs nothing.
        self.prediction_log = prediction_log
        self.auth_enabled = auth_enabled
        self.max_body_bytes = max_body_bytes
        self.max_tensor_elements = max_tensor_elements
        self.server_version = server_version
        self.metrics = metrics if metrics is not None else InferenceMetrics()
        self.auth = (
            authenticate
            if isinstance(authenticate, AuthCache)
            else AuthCache(authenticate, auth_ttl_s)
        )
        #: Streams, limits and metrics of the OpenAI routes' text generation.
        self.generations = Generations(generation or GenerationLimits(), self.metrics.generation)
        self._server_metadata = dumps(
            {"name": "aimass", "version": server_version, "extensions": ["binary_tensor_data"]}
        )
        self._unresolved = self.metrics.version("", "", "", "")
        #: Who calls when auth is off.
        self.anonymous = Principal(token_id=None, name="anonymous", role="admin", project=None)
        self.request_ids = RequestIds()

    @staticmethod
    def handles(path: str) -> bool:
        """True for the paths this app answers; send every other one elsewhere."""
        if path.startswith("/v2"):
            return len(path) == 3 or path[3] == "/"
        if path == "/metrics":
            return True
        if path.startswith("/v1/"):
            return True
        return path.startswith("/api/v1/deployments/") and path.endswith("/predict")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Answer one request (or run the lifespan protocol when served on its own)."""
        kind = scope["type"]
        if kind == "http":
            await self._http(scope, receive, send)
        elif kind == "lifespan":
            await self._lifespan(receive, send)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.repository.close()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = time.perf_counter()
        seen = scope_headers(scope)  # (behind the edge guard: as it read them)
        authorization = seen.authorization
        # Behind the HTTP edge (api.middleware) the request already has its id.
        request_id: str | None = scope.get(REQUEST_ID_KEY)
        if request_id is None:
            request_id = self.request_ids.assign(seen.request_id)
        path: str = scope["path"]
        plain = path.startswith(("/api/", "/v1/"))
        try:
            parts = path.rstrip("/").split("/") if len(path) > 1 else ["", ""]
            call = Call(
                scope, receive, send, request_id, parts, scope["method"], authorization,
                seen.content_length, seen.header_length, started,
            )  # fmt: skip
            if parts[1] == "v2":
                await self._v2(call)
            elif parts[1] == "metrics":
                allow(call.method, "GET")
                principal = await self.principal(authorization)
                if not principal.can("viewer", None):
                    raise HTTPError(403, "metrics need a token that is not limited to a project")
                await call.answer(200, self.metrics.render(), _METRICS_TYPE)
            elif parts[1] == "v1":
                await openai_dispatch(self, call)
            elif len(parts) == 6 and parts[3] == "deployments" and parts[5] == "predict":
                allow(call.method, "POST")
                await self._predict(call, parts[4])
            else:
                raise HTTPError(404, "no such route")
        except HTTPError as exc:
            await self._error(send, request_id, exc, plain)
        except AimassError as exc:
            await self._error(send, request_id, _http_error(exc), plain)
        except Exception:
            log.exception("inference request failed (request id %s)", request_id)
            await self._error(
                send, request_id, HTTPError(500, f"internal error (request id {request_id})"), plain
            )

    async def _v2(self, call: Call) -> None:
        parts, method = call.parts, call.method
        count = len(parts)
        if count == 4 and parts[2] == "health" and parts[3] in ("live", "ready"):
            allow(method, "GET")
            if parts[3] == "ready" and self.ready is not None and not self.ready():
                # Up, but its deployments are not loaded yet: a balancer sends it nothing.
                raise HTTPError(503, "this server is still loading its deployments")
            await call.answer(200, EMPTY)
            return
        if count == 2:
            allow(method, "GET")
            await self.principal(call.authorization)
            await call.answer(200, self._server_metadata)
            return
        if count < 4 or parts[2] != "models" or count > 7:
            raise HTTPError(404, "no such route")
        name = parts[3]
        rest = parts[4:]
        version: str | None = None
        if rest and rest[0] == "versions":
            if len(rest) < 2:
                raise HTTPError(404, "no such route")
            version = rest[1]
            rest = rest[2:]
        action = rest[0] if rest else ""
        if len(rest) > 1 or action not in ("", "ready", "infer"):
            raise HTTPError(404, "no such route")
        allow(method, "POST" if action == "infer" else "GET")
        project = await self.project(call)
        if action == "infer":
            # In flight from here: its deployment's batches wait for it until it joins one.
            with self.repository.admit(name, project):
                body = await read_body(
                    call.receive, call.content_length, self.max_body_bytes,
                    "AIMASS_MAX_INFERENCE_BYTES",
                )  # fmt: skip
                await self._infer(call, name, version, project, body)
            return
        deployment = self.deployment(name, project)
        if action == "ready":
            if not deployment.serving or (
                version is not None and not find_version(deployment, version)
            ):
                raise HTTPError(400, f"model {quote(name)} is not ready")
            await call.answer(200, EMPTY)
            return
        await call.answer(200, self._model_metadata(deployment, version))

    async def project(self, call: Call) -> str:
        """The request's project, once its token is checked and may use it (else 401/403)."""
        principal = await self.principal(call.authorization)
        project = call.project()
        if not principal.can("viewer", project):
            raise HTTPError(403, f"this token may not use project {project!r}")
        return project

    def deployment(self, name: str, project: str) -> ServedDeployment:
        deployment = self.repository.get(name, project)
        if deployment is None:
            raise HTTPError(404, f"unknown model {quote(name)}")
        return deployment

    def serving(self, deployment: ServedDeployment, version: str | None) -> ServedVersion:
        """The version to answer with: the named one or a weighted pick; 503 while none loaded."""
        if not deployment.versions:
            reason = f": {deployment.reason}" if deployment.reason else ""
            if deployment.state == "failed":
                message = f"model {quote(deployment.name)} failed to load{reason}"
            elif deployment.state == "pending":
                message = f"model {quote(deployment.name)} cannot be served here{reason}"
            else:
                message = f"model {quote(deployment.name)} is {deployment.state}; try again soon"
            raise HTTPError(503, message)
        if version is None:
            return deployment.pick()
        served = find_version(deployment, version)
        if served is None:
            raise HTTPError(
                404, f"unknown version {quote(version)} of model {quote(deployment.name)}"
            )
        return served

    def _model_metadata(self, deployment: ServedDeployment, version: str | None) -> bytes:
        if version is None:
            served = deployment.primary() or self.serving(deployment, None)
            versions = [str(v.version) for v in deployment.versions]
        else:
            served = self.serving(deployment, version)
            versions = [str(served.version)]
        signature = served.signature
        return dumps(
            {
                "name": deployment.name,
                "versions": versions,
                "platform": served.flavor,
                "inputs": [spec_json(s) for s in signature.inputs] if signature else [],
                "outputs": [spec_json(s) for s in served.runner.output_specs],
            }
        )

    async def _infer(
        self, call: Call, name: str, version: str | None, project: str, body: bytes
    ) -> None:
        request_id, header_length, started = call.request_id, call.header_length, call.started
        length: int | None = None
        if header_length is not None:
            if not header_length.isdigit():
                raise HTTPError(400, "Inference-Header-Content-Length must be a number of bytes")
            length = int(header_length)

        async def predict(served: ServedVersion) -> tuple[InferRequest, dict[str, Array]]:
            runner = served.runner
            request = parse_infer_request(body, length, served.signature, self.max_tensor_elements)
            wanted = requested_outputs(runner, request)
            outputs = await runner.infer(request.inputs, wanted)
            check_given(outputs, wanted)
            return request, outputs

        deployment, served, metrics, (request, outputs) = await self.run_model(
            name, project, version, request_id, predict
        )
        payload, content_type, extra = infer_answer(name, served, request, outputs)
        await call.answer(200, payload, content_type, *extra)
        metrics.request(200, time.perf_counter() - started)
        self.log_answer(deployment, served, request_id, request.inputs, outputs, started)

    async def run_model(
        self,
        name: str,
        project: str,
        version: str | None,
        request_id: str,
        call: Callable[[ServedVersion], Awaitable[_T]],
    ) -> tuple[ServedDeployment, ServedVersion, VersionMetrics, _T]:
        """Pick the version to serve and run ``call`` on it, mapping failures to answers.

        A runner retired by a swap between look-up and queueing is retried once
        on the deployment that replaced it.
        """
        for attempt in (1, 2):
            deployment = self.repository.get(name, project)
            if deployment is None:
                self._unresolved.request(404, None)
                raise HTTPError(404, f"unknown model {quote(name)}")
            try:
                served = self.serving(deployment, version)
            except HTTPError as exc:
                self._unresolved.request(exc.status, None)
                raise
            metrics = served.runner.metrics or self.bind_metrics(deployment, served)
            if getattr(served.runner, "full", False):  # refused before the body is parsed
                raise _shed(metrics, name, "its queue is full; try again soon")
            try:
                return deployment, served, metrics, await call(served)
            except BatcherClosed:
                if attempt == 1:
                    continue  # swapped out between look-up and queueing: ask the new one
                raise
            except Exception as exc:
                raise model_failure(exc, metrics, name, served, request_id) from None
        raise AssertionError("unreachable")

    async def _predict(self, call: Call, name: str) -> None:
        project = await self.project(call)
        with self.repository.admit(name, project):
            await self._predict_admitted(call, name, project)

    async def _predict_admitted(self, call: Call, name: str, project: str) -> None:
        request_id, started = call.request_id, call.started
        body = await read_body(
            call.receive, call.content_length, self.max_body_bytes, "AIMASS_MAX_INFERENCE_BYTES"
        )

        ignored: list[str] = []
        inputs: dict[str, Array] = {}

        async def predict(served: ServedVersion) -> dict[str, Array]:
            request = parse_predict(body, served.signature, self.max_tensor_elements)
            ignored[:] = request.ignored_columns
            inputs.update(request.inputs)
            return await served.runner.infer(request.inputs)

        deployment, served, metrics, outputs = await self.run_model(
            name, project, None, request_id, predict
        )
        runner = served.runner
        answer: dict[str, object] = {
            "deployment": deployment.name,
            "model": served.model,
            "version": served.version,
            "predictions": to_json_value(outputs[runner.predict_output]),
        }
        proba = outputs.get(runner.proba_output)
        if proba is not None:
            answer["probabilities"] = to_json_value(proba)
        if ignored:
            answer["ignored_columns"] = ignored
        await call.answer(200, dumps(answer))
        metrics.request(200, time.perf_counter() - started)
        self.log_answer(deployment, served, request_id, inputs, outputs, started)

    def log_answer(
        self,
        deployment: ServedDeployment,
        served: ServedVersion,
        request_id: str,
        inputs: dict[str, Array],
        outputs: dict[str, Array],
        started: float,
    ) -> None:
        """Queue the answered prediction in the prediction log (sampled, never waits)."""
        if self.prediction_log is not None:
            self.prediction_log.answered(deployment, served, request_id, inputs, outputs, started)

    def bind_metrics(self, deployment: ServedDeployment, served: ServedVersion) -> VersionMetrics:
        """The metrics of ``served`` (made and bound to its runner on first use)."""
        metrics = self.metrics.version(
            deployment.project, deployment.name, served.model, str(served.version)
        )
        served.runner.metrics = metrics
        return metrics

    async def principal(self, authorization: bytes | None) -> Principal:
        if not self.auth_enabled:
            return self.anonymous
        if authorization is None:
            raise HTTPError(401, "this route needs a bearer token (Authorization: Bearer ...)")
        secret = bearer_secret(authorization)
        if secret is None:
            raise HTTPError(401, "the Authorization header must be 'Bearer <token>'")
        if not secret:
            raise HTTPError(401, "the bearer token is empty")
        try:
            return await self.auth.principal(secret)
        except Unauthenticated as exc:
            raise HTTPError(401, exc.message) from None

    async def _error(self, send: Send, request_id: str, error: HTTPError, plain: bool) -> None:
        body, extra = error_answer(request_id, error, plain)
        try:
            await answer(send, error.status, body, request_id, JSON, *extra)
        except Exception:
            log.debug("could not send the error answer (request id %s)", request_id)


def requested_outputs(runner: Runner, request: InferRequest) -> list[str] | None:
    """The outputs an infer request asks for (None: every one); a 400 for one the model
    does not declare."""
    if request.outputs is None:
        return None
    wanted = [out.name for out in request.outputs]
    known = {runner.predict_output, runner.proba_output}
    known.update(spec.name for spec in runner.output_specs)
    for out in wanted:
        if out not in known:
            raise InvalidInput(f"unknown output {quote(out)}")
    return wanted


def check_given(outputs: dict[str, Array], wanted: list[str] | None) -> None:
    """A 400 if the model did not give an output the request asked for."""
    for out in wanted or ():
        if out not in outputs:
            raise InvalidInput(f"this model gives no output {quote(out)}")


def infer_answer(
    name: str, served: ServedVersion, request: InferRequest, outputs: dict[str, Array]
) -> tuple[bytes, bytes, tuple[tuple[bytes, bytes], ...]]:
    """A v2 infer answer: its body, content type and extra headers (JSON, or the binary
    tensor extension with its ``Inference-Header-Content-Length``)."""
    payload, json_length = encode_infer_response(
        name, str(served.version), request.id, outputs, request.outputs, request.binary_output
    )
    if json_length is None:
        return payload, JSON, ()
    return payload, _BINARY, ((b"inference-header-content-length", str(json_length).encode()),)


def error_answer(
    request_id: str, error: HTTPError, plain: bool
) -> tuple[bytes, list[tuple[bytes, bytes]]]:
    """An error's JSON body (``{"error": ...}``; under /api and /v1 with its code and the
    request id) and the headers it adds (``WWW-Authenticate``, ``Retry-After``, close)."""
    if plain:
        code = error_code(error.status)
        body = dumps({"error": {"code": code, "message": error.message, "request_id": request_id}})
    else:
        body = dumps({"error": error.message})
    extra: list[tuple[bytes, bytes]] = []
    if error.status == 401:
        extra.append((b"www-authenticate", b"Bearer"))
    if error.retry_after is not None:  # exactly one Retry-After: the error's own first
        extra.append((b"retry-after", str(error.retry_after).encode()))
    elif error.status == 429:
        extra.append(_RETRY_AFTER)
    if error.close:
        extra.append(_CLOSE)
    return body, extra


def model_failure(
    exc: Exception, metrics: VersionMetrics, name: str, served: ServedVersion, request_id: str
) -> HTTPError:
    """The answer to a model call that raised ``exc``, counted in ``metrics`` (call it in
    the ``except`` block: an unexpected failure is logged with its traceback)."""
    if isinstance(exc, InvalidInput):
        metrics.request(400, None)
        return HTTPError(400, exc.message)
    if isinstance(exc, Overloaded):  # the queue is full, or the request waited too long
        return _shed(metrics, name, exc.message, exc.reason)
    if isinstance(exc, Unavailable):  # a sandboxed model's host stopped or timed out
        metrics.request(503, None)
        return HTTPError(503, exc.message)
    metrics.request(500, None)
    log.exception("model %s version %s failed to predict (request id %s)",
                  served.model, served.version, request_id)  # fmt: skip
    return HTTPError(500, f"model failed to predict; see server logs (request id {request_id})")


def _shed(metrics: VersionMetrics, name: str, why: str, reason: str = "queue_full") -> HTTPError:
    """Count a request refused because the deployment's queue is full (or it waited too
    long in it); its 429."""
    metrics.request(429, None)
    metrics.reject(reason)
    return HTTPError(429, f"model {quote(name)} is overloaded: {why}")


def find_version(deployment: ServedDeployment, version: str) -> ServedVersion | None:
    """The deployment's version named by a path or request string, or None."""
    if not version.isdigit() or len(version) > 18:
        return None
    return deployment.version(int(version))


def _http_error(exc: AimassError) -> HTTPError:
    if isinstance(exc, Unavailable):  # the database is down and the token is not known here
        return HTTPError(503, exc.message, retry_after=exc.retry_after)
    if exc.status >= 500:
        log.error("inference path error %s: %s", exc.code, exc.message)
        return HTTPError(500, "internal error")
    return HTTPError(exc.status, exc.message)
