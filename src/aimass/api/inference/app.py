"""The lean inference path: a plain ASGI app for /v2, /metrics and the JSON predict route.

No framework sits on this path: routes are found by splitting the path, headers
are read in one pass, constant answers and headers are encoded once, auth is a
cached hash look-up, and bodies are counted against their limit as they arrive.
The error table, request ids, bearer parsing and body caps are the control
plane's too (``api.edge``); the models, batching and protocol are ``serving``'s.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Literal, TypeVar
from urllib.parse import parse_qsl

import orjson

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
)
from aimass.api.inference.openai import Completion, embeddings, model_answer, models
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

log = logging.getLogger("aimass.serving")
_T = TypeVar("_T")

_JSON = b"application/json"
_BINARY = b"application/octet-stream"
_NOSNIFF = (b"x-content-type-options", b"nosniff")
_CLOSE = (b"connection", b"close")
_PROJECT = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
_EMPTY = b""
_METRICS_TYPE = METRICS_CONTENT_TYPE.encode()
_MAX_NAME = 128
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
        self._anonymous = Principal(token_id=None, name="anonymous", role="admin", project=None)
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
        authorization = content_length = header_length = client_id = None
        for key, value in scope["headers"]:
            if key == b"authorization":
                authorization = value
            elif key == b"content-length":
                content_length = value
            elif key == b"inference-header-content-length":
                header_length = value
            elif key == b"x-request-id":
                client_id = value
        # Behind the HTTP edge (api.middleware) the request already has its id.
        request_id: str | None = scope.get(REQUEST_ID_KEY)
        if request_id is None:
            request_id = self.request_ids.assign(client_id)
        path: str = scope["path"]
        method: str = scope["method"]
        plain = path.startswith(("/api/", "/v1/"))
        try:
            parts = path.rstrip("/").split("/") if len(path) > 1 else ["", ""]
            if parts[1] == "v2":
                await self._v2(
                    scope, receive, send, request_id, parts, method, authorization,
                    content_length, header_length, started,
                )  # fmt: skip
            elif parts[1] == "metrics":
                _allow(method, "GET")
                principal = await self.principal(authorization)
                if not principal.can("viewer", None):
                    raise HTTPError(403, "metrics need a token that is not limited to a project")
                body = self.metrics.render()
                await _answer(send, 200, body, request_id, _METRICS_TYPE)
            elif parts[1] == "v1":
                await self._openai(
                    scope, receive, send, request_id, parts, method, authorization,
                    content_length, started,
                )  # fmt: skip
            elif len(parts) == 6 and parts[3] == "deployments" and parts[5] == "predict":
                _allow(method, "POST")
                await self._predict(
                    scope, receive, send, request_id, parts[4], authorization, content_length,
                    started,
                )  # fmt: skip
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

    async def _v2(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        request_id: str,
        parts: list[str],
        method: str,
        authorization: bytes | None,
        content_length: bytes | None,
        header_length: bytes | None,
        started: float,
    ) -> None:
        count = len(parts)
        if count == 4 and parts[2] == "health" and parts[3] in ("live", "ready"):
            _allow(method, "GET")
            if parts[3] == "ready" and self.ready is not None and not self.ready():
                # Up, but its deployments are not loaded yet: a balancer sends it nothing.
                raise HTTPError(503, "this server is still loading its deployments")
            await _answer(send, 200, _EMPTY, request_id, _JSON)
            return
        if count == 2:
            _allow(method, "GET")
            await self.principal(authorization)
            await _answer(send, 200, self._server_metadata, request_id, _JSON)
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
        _allow(method, "POST" if action == "infer" else "GET")
        principal = await self.principal(authorization)
        project = _project(scope)
        if not principal.can("viewer", project):
            raise HTTPError(403, f"this token may not use project {project!r}")
        if action == "infer":
            # In flight from here: its deployment's batches wait for it until it joins one.
            with self.repository.admit(name, project):
                body = await read_body(
                    receive, content_length, self.max_body_bytes, "AIMASS_MAX_INFERENCE_BYTES"
                )
                await self._infer(
                    send, request_id, name, version, project, body, header_length, started
                )
            return
        deployment = self.deployment(name, project)
        if action == "ready":
            if not deployment.serving or (
                version is not None and not find_version(deployment, version)
            ):
                raise HTTPError(400, f"model {_quote(name)} is not ready")
            await _answer(send, 200, _EMPTY, request_id, _JSON)
            return
        await _answer(send, 200, self._model_metadata(deployment, version), request_id, _JSON)

    async def _openai(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        request_id: str,
        parts: list[str],
        method: str,
        authorization: bytes | None,
        content_length: bytes | None,
        started: float,
    ) -> None:
        """The OpenAI-compatible routes (``api.inference.openai``); ``model`` is a deployment."""
        route = "/".join(parts[2:])
        principal = await self.principal(authorization)
        project = _project(scope)
        if not principal.can("viewer", project):
            raise HTTPError(403, f"this token may not use project {project!r}")
        if route == "models":
            _allow(method, "GET")
            await _answer(send, 200, models(self.repository, project), request_id, _JSON)
            return
        if len(parts) == 4 and parts[2] == "models":
            _allow(method, "GET")
            body = model_answer(self.repository, project, parts[3])
            await _answer(send, 200, body, request_id, _JSON)
            return
        if route not in ("embeddings", "completions", "chat/completions"):
            raise HTTPError(404, "no such route")
        _allow(method, "POST")
        body = await read_body(receive, content_length, self.max_body_bytes)
        name = _model_field(body)
        if route == "embeddings":

            async def embed(served: ServedVersion) -> bytes:
                return await embeddings(served, body, name)

            _, _, metrics, answer = await self.run_model(name, project, None, request_id, embed)
            await _answer(send, 200, answer, request_id, _JSON)
            metrics.request(200, time.perf_counter() - started)
            return
        kind: Literal["chat", "text"] = "chat" if route == "chat/completions" else "text"

        async def complete(served: ServedVersion) -> Completion:
            labels = (project, name, served.model, str(served.version))
            return Completion(self.generations, served, kind, body, name, labels)

        _, _, metrics, completion = await self.run_model(name, project, None, request_id, complete)
        await completion.answer(receive, send, request_id)
        metrics.request(200, time.perf_counter() - started)

    def deployment(self, name: str, project: str) -> ServedDeployment:
        deployment = self.repository.get(name, project)
        if deployment is None:
            raise HTTPError(404, f"unknown model {_quote(name)}")
        return deployment

    def serving(self, deployment: ServedDeployment, version: str | None) -> ServedVersion:
        """The version to answer with: the named one or a weighted pick; 503 while none loaded."""
        if not deployment.versions:
            reason = f": {deployment.reason}" if deployment.reason else ""
            if deployment.state == "failed":
                message = f"model {_quote(deployment.name)} failed to load{reason}"
            elif deployment.state == "pending":
                message = f"model {_quote(deployment.name)} cannot be served here{reason}"
            else:
                message = f"model {_quote(deployment.name)} is {deployment.state}; try again soon"
            raise HTTPError(503, message)
        if version is None:
            return deployment.pick()
        served = find_version(deployment, version)
        if served is None:
            raise HTTPError(
                404, f"unknown version {_quote(version)} of model {_quote(deployment.name)}"
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
        self,
        send: Send,
        request_id: str,
        name: str,
        version: str | None,
        project: str,
        body: bytes,
        header_length: bytes | None,
        started: float,
    ) -> None:
        length: int | None = None
        if header_length is not None:
            if not header_length.isdigit():
                raise HTTPError(400, "Inference-Header-Content-Length must be a number of bytes")
            length = int(header_length)

        async def call(served: ServedVersion) -> tuple[InferRequest, dict[str, Array]]:
            runner = served.runner
            request = parse_infer_request(body, length, served.signature, self.max_tensor_elements)
            wanted: list[str] | None = None
            if request.outputs is not None:
                wanted = [out.name for out in request.outputs]
                known = {runner.predict_output, runner.proba_output}
                known.update(spec.name for spec in runner.output_specs)
                for out in wanted:
                    if out not in known:
                        raise InvalidInput(f"unknown output {_quote(out)}")
            outputs = await runner.infer(request.inputs, wanted)
            for out in wanted or ():
                if out not in outputs:
                    raise InvalidInput(f"this model gives no output {_quote(out)}")
            return request, outputs

        deployment, served, metrics, (request, outputs) = await self.run_model(
            name, project, version, request_id, call
        )
        payload, json_length = encode_infer_response(
            name, str(served.version), request.id, outputs, request.outputs,
            request.binary_output,
        )  # fmt: skip
        if json_length is None:
            await _answer(send, 200, payload, request_id, _JSON)
        else:
            await _answer(
                send, 200, payload, request_id, _BINARY,
                (b"inference-header-content-length", str(json_length).encode()),
            )  # fmt: skip
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
                raise HTTPError(404, f"unknown model {_quote(name)}")
            try:
                served = self.serving(deployment, version)
            except HTTPError as exc:
                self._unresolved.request(exc.status, None)
                raise
            metrics = served.runner.metrics or self._bind(deployment, served)
            if getattr(served.runner, "full", False):  # refused before the body is parsed
                raise _shed(metrics, name, "its queue is full; try again soon")
            try:
                return deployment, served, metrics, await call(served)
            except BatcherClosed:
                if attempt == 1:
                    continue  # swapped out between look-up and queueing: ask the new one
                raise
            except InvalidInput as exc:
                metrics.request(400, None)
                raise HTTPError(400, exc.message) from None
            except Overloaded as exc:  # the queue is full, or the request waited too long
                raise _shed(metrics, name, exc.message, exc.reason) from None
            except Unavailable as exc:  # a sandboxed model's host stopped or timed out
                metrics.request(503, None)
                raise HTTPError(503, exc.message) from None
            except Exception:
                metrics.request(500, None)
                log.exception("model %s version %s failed to predict (request id %s)",
                              served.model, served.version, request_id)  # fmt: skip
                raise HTTPError(
                    500, f"model failed to predict; see server logs (request id {request_id})"
                ) from None
        raise AssertionError("unreachable")

    async def _predict(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        request_id: str,
        name: str,
        authorization: bytes | None,
        content_length: bytes | None,
        started: float,
    ) -> None:
        principal = await self.principal(authorization)
        project = _project(scope)
        if not principal.can("viewer", project):
            raise HTTPError(403, f"this token may not use project {project!r}")
        with self.repository.admit(name, project):
            await self._predict_admitted(
                send, request_id, name, project, receive, content_length, started
            )

    async def _predict_admitted(
        self,
        send: Send,
        request_id: str,
        name: str,
        project: str,
        receive: Receive,
        content_length: bytes | None,
        started: float,
    ) -> None:
        body = await read_body(
            receive, content_length, self.max_body_bytes, "AIMASS_MAX_INFERENCE_BYTES"
        )

        ignored: list[str] = []
        inputs: dict[str, Array] = {}

        async def call(served: ServedVersion) -> dict[str, Array]:
            request = parse_predict(body, served.signature, self.max_tensor_elements)
            ignored[:] = request.ignored_columns
            inputs.update(request.inputs)
            return await served.runner.infer(request.inputs)

        deployment, served, metrics, outputs = await self.run_model(
            name, project, None, request_id, call
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
        await _answer(send, 200, dumps(answer), request_id, _JSON)
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

    def _bind(self, deployment: ServedDeployment, served: ServedVersion) -> VersionMetrics:
        metrics = self.metrics.version(
            deployment.project, deployment.name, served.model, str(served.version)
        )
        served.runner.metrics = metrics
        return metrics

    async def principal(self, authorization: bytes | None) -> Principal:
        if not self.auth_enabled:
            return self._anonymous
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
        if plain:
            code = error_code(error.status)
            body = dumps(
                {"error": {"code": code, "message": error.message, "request_id": request_id}}
            )
        else:
            body = dumps({"error": error.message})
        extra: list[tuple[bytes, bytes]] = []
        if error.status == 401:
            extra.append((b"www-authenticate", b"Bearer"))
        elif error.status == 429:
            extra.append(_RETRY_AFTER)
        if error.close:
            extra.append(_CLOSE)
        if error.retry_after is not None:
            extra.append((b"retry-after", str(error.retry_after).encode()))
        try:
            await _answer(send, error.status, body, request_id, _JSON, *extra)
        except Exception:
            log.debug("could not send the error answer (request id %s)", request_id)


async def _answer(
    send: Send,
    status: int,
    body: bytes,
    request_id: str,
    content_type: bytes,
    *extra: tuple[bytes, bytes],
) -> None:
    headers = [
        (b"content-type", content_type),
        (b"content-length", str(len(body)).encode()),
        (b"x-request-id", request_id.encode()),
        _NOSNIFF,
    ]
    if extra:
        headers.extend(extra)
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def _allow(method: str, allowed: str) -> None:
    if method != allowed:
        raise HTTPError(405, f"method {method[:16]} is not allowed here; use {allowed}")


def _shed(metrics: VersionMetrics, name: str, why: str, reason: str = "queue_full") -> HTTPError:
    """Count a request refused because the deployment's queue is full (or it waited too
    long in it); its 429."""
    metrics.request(429, None)
    metrics.reject(reason)
    return HTTPError(429, f"model {_quote(name)} is overloaded: {why}")


def _model_field(body: bytes) -> str:
    """The ``model`` of an OpenAI request body (a deployment name), or a 400."""
    try:
        value = orjson.loads(body) if body else None
    except orjson.JSONDecodeError:
        raise HTTPError(400, "the request body must be JSON") from None
    model = value.get("model") if isinstance(value, dict) else None
    if not isinstance(model, str) or not model:
        raise HTTPError(400, "the request needs a 'model': the name of a deployment")
    return model


def _project(scope: Scope) -> str:
    query: bytes = scope.get("query_string", _EMPTY)
    if not query:
        return "default"
    for key, value in parse_qsl(query.decode("latin-1")):
        if key == "project":
            if not _PROJECT.fullmatch(value):
                raise HTTPError(400, "the project parameter is not a valid project name")
            return value
    return "default"


def find_version(deployment: ServedDeployment, version: str) -> ServedVersion | None:
    """The deployment's version named by a path or request string, or None."""
    if not version.isdigit() or len(version) > 18:
        return None
    return deployment.version(int(version))


def _quote(name: str) -> str:
    """A caller-given name for an error message: repr'd and cut short."""
    return repr(name[:_MAX_NAME])


def _http_error(exc: AimassError) -> HTTPError:
    if isinstance(exc, Unavailable):  # the database is down and the token is not known here
        return HTTPError(503, exc.message, retry_after=exc.retry_after)
    if exc.status >= 500:
        log.error("inference path error %s: %s", exc.code, exc.message)
        return HTTPError(500, "internal error")
    return HTTPError(exc.status, exc.message)
