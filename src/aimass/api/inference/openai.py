"""OpenAI-compatible routes on the inference path: /v1/models, embeddings, (chat) completions.

The ``model`` field names a deployment (``?project=`` picks the project, default
``default``). Embeddings go through the deployment's runner, so they are batched
with its /v2 traffic; completions stream as server-sent events while the model
generates (``serving.generation``), and stop when the client goes away.
"""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, Literal, Protocol, TypeVar

import numpy as np
import orjson

from aimass.api.edge import HTTPError, Receive, Send, read_body
from aimass.api.inference.call import Call, allow
from aimass.entities.openai import ChatRequest, CompletionRequest, EmbeddingsRequest
from aimass.errors import InvalidInput
from aimass.serving.generation import Outcome, Sampling
from aimass.serving.openai_protocol import (
    completion_answer,
    completion_chunk,
    embeddings_answer,
    model_entry,
    models_answer,
    parse_request,
)
from aimass.serving.protocol import dumps

if TYPE_CHECKING:
    from aimass.serving.generation import Generations, TextGenerator
    from aimass.serving.metrics import VersionMetrics
    from aimass.serving.repository import ModelRepository, ServedDeployment, ServedVersion

#: The task each route needs of a deployment's model.
_TASK = {"embeddings": "feature-extraction", "completions": "text-generation"}
_SSE_HEADERS = [
    (b"content-type", b"text/event-stream; charset=utf-8"),
    (b"cache-control", b"no-cache"),
    (b"x-content-type-options", b"nosniff"),
]


_T = TypeVar("_T")


class InferencePath(Protocol):
    """What the OpenAI routes use of the inference app (``api.inference.app``)."""

    repository: ModelRepository
    max_body_bytes: int
    generations: Generations

    async def project(self, call: Call) -> str: ...

    async def run_model(
        self,
        name: str,
        project: str,
        version: str | None,
        request_id: str,
        call: Callable[[ServedVersion], Awaitable[_T]],
    ) -> tuple[ServedDeployment, ServedVersion, VersionMetrics, _T]: ...


async def dispatch(app: InferencePath, call: Call) -> None:
    """Answer a request under ``/v1/``; ``model`` names a deployment of the request's project."""
    parts, method, request_id = call.parts, call.method, call.request_id
    route = "/".join(parts[2:])
    project = await app.project(call)
    if route == "models":
        allow(method, "GET")
        await call.answer(200, models(app.repository, project))
        return
    if len(parts) == 4 and parts[2] == "models":
        allow(method, "GET")
        await call.answer(200, model_answer(app.repository, project, parts[3]))
        return
    if route not in ("embeddings", "completions", "chat/completions"):
        raise HTTPError(404, "no such route")
    allow(method, "POST")
    body = await read_body(call.receive, call.content_length, app.max_body_bytes)
    name = model_field(body)
    if route == "embeddings":

        async def embed(served: ServedVersion) -> bytes:
            return await embeddings(served, body, name)

        _, _, metrics, answer = await app.run_model(name, project, None, request_id, embed)
        await call.answer(200, answer)
        metrics.request(200, time.perf_counter() - call.started)
        return
    kind: Literal["chat", "text"] = "chat" if route == "chat/completions" else "text"

    async def complete(served: ServedVersion) -> Completion:
        labels = (project, name, served.model, str(served.version))
        return Completion(app.generations, served, kind, body, name, labels)

    _, _, metrics, completion = await app.run_model(name, project, None, request_id, complete)
    await completion.answer(call.receive, call.send, request_id)
    metrics.request(200, time.perf_counter() - call.started)


def model_field(body: bytes) -> str:
    """The ``model`` of an OpenAI request body (a deployment name), or a 400."""
    try:
        value = orjson.loads(body) if body else None
    except orjson.JSONDecodeError:
        raise HTTPError(400, "the request body must be JSON") from None
    model = value.get("model") if isinstance(value, dict) else None
    if not isinstance(model, str) or not model:
        raise HTTPError(400, "the request needs a 'model': the name of a deployment")
    return model


def task_of(served: ServedVersion) -> str | None:
    """The task of a served version's model (transformers flavor), or None."""
    predictor = getattr(served.runner, "predictor", None)
    task = getattr(predictor, "task", None)
    return task if isinstance(task, str) else None


def listed(repository: ModelRepository, project: str) -> list[tuple[str, str]]:
    """Deployments of ``project`` whose model answers an OpenAI route."""
    out = []
    for deployment in repository.all():
        if deployment.project != project or not deployment.versions:
            continue
        if any(task_of(v) in _TASK.values() for v in deployment.versions):
            out.append((deployment.name, deployment.project))
    return out


def served_for(served: ServedVersion, route: str, name: str) -> Any:
    """The predictor behind ``served`` if its task fits ``route``, else a 400 saying why."""
    need = _TASK["embeddings" if route == "embeddings" else "completions"]
    task = task_of(served)
    if task != need:
        what = f"a {task} model" if task else f"a {served.flavor} model"
        raise InvalidInput(
            f"deployment {name[:128]!r} serves {what}; /v1/{route} needs a {need} model "
            "(a transformers model deployed under that name)"
        )
    return getattr(served.runner, "predictor", None)


async def embeddings(served: ServedVersion, body: bytes, name: str) -> bytes:
    """Answer ``/v1/embeddings`` through the version's runner (batched with /v2)."""
    request = parse_request(EmbeddingsRequest, body, "embeddings")
    predictor = served_for(served, "embeddings", name)
    items = request.texts()
    batch = np.empty(len(items), dtype=object)
    batch[:] = items
    outputs = await served.runner.infer({"text": batch})
    vectors = outputs[served.runner.predict_output]
    if request.dimensions is not None:
        if not 0 < request.dimensions <= vectors.shape[1]:
            raise InvalidInput(f"dimensions must be between 1 and {vectors.shape[1]}")
        vectors = vectors[:, : request.dimensions]
        vectors = vectors / np.linalg.norm(vectors, axis=1, keepdims=True).clip(1e-12)
    tokens = predictor.count_tokens(items) if predictor is not None else 0
    return dumps(embeddings_answer(name, vectors, request.encoding_format, tokens))


class Completion:
    """One (chat) completion request, answered whole or streamed."""

    def __init__(
        self,
        generations: Generations,
        served: ServedVersion,
        kind: Literal["chat", "text"],
        body: bytes,
        name: str,
        labels: tuple[str, str, str, str],
    ) -> None:
        route = "chat/completions" if kind == "chat" else "completions"
        request: ChatRequest | CompletionRequest
        if kind == "chat":
            request = parse_request(ChatRequest, body, route)
            wanted = request.wanted_tokens()
        else:
            request = parse_request(CompletionRequest, body, route)
            wanted = request.max_tokens
        self.generator: TextGenerator = served_for(served, route, name)
        self.kind = kind
        self.name = name
        self.labels = labels
        self.generations = generations
        self.stream = request.stream
        self.sampling = Sampling(
            generations.check(wanted), request.temperature, request.top_p, request.seed
        )
        if isinstance(request, ChatRequest):
            messages = [{"role": m.role, "content": m.text()} for m in request.messages]
            self.prompt = self.generator.chat_prompt(messages)
        else:
            self.prompt = request.text()
        prefix = "chatcmpl" if kind == "chat" else "cmpl"
        self.id = f"{prefix}-{uuid.uuid4().hex[:24]}"

    async def answer(self, receive: Receive, send: Send, request_id: str) -> None:
        """Generate and answer; takes a stream slot first (429 when none is free)."""
        self.generations.admit()
        cancel = threading.Event()

        async def watch() -> None:
            # After the body the only message left is the client going away.
            while True:
                message = await receive()
                if message["type"] == "http.disconnect":
                    cancel.set()
                    return

        watcher = asyncio.create_task(watch())
        try:
            if self.stream:
                await self._stream(send, request_id, cancel)
            else:
                await self._whole(send, request_id, cancel)
        finally:
            watcher.cancel()
            self.generations.release()

    async def _whole(self, send: Send, request_id: str, cancel: threading.Event) -> None:
        pieces: list[str] = []
        outcome: Outcome | None = None
        async for item in self.generations.stream(
            self.generator, self.prompt, self.sampling, cancel, self.labels
        ):
            if isinstance(item, Outcome):
                outcome = item
            else:
                pieces.append(item)
        assert outcome is not None
        if cancel.is_set():
            return  # the client went away: nobody to answer
        if outcome.finish_reason == "timeout":
            raise HTTPError(
                408,
                f"generation took longer than this server's limit of "
                f"{self.generations.limits.timeout_s:g} s (AIMASS_LLM_TIMEOUT_S); "
                "ask for fewer max_tokens or stream",
            )
        text = "".join(pieces)
        body = dumps(completion_answer(self.kind, self.id, self.name, text, outcome))
        await send({"type": "http.response.start", "status": 200, "headers": [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            (b"x-request-id", request_id.encode()),
        ]})  # fmt: skip
        await send({"type": "http.response.body", "body": body})

    async def _stream(self, send: Send, request_id: str, cancel: threading.Event) -> None:
        try:
            await send({"type": "http.response.start", "status": 200, "headers": [
                *_SSE_HEADERS, (b"x-request-id", request_id.encode()),
            ]})  # fmt: skip
            first = True
            async for item in self.generations.stream(
                self.generator, self.prompt, self.sampling, cancel, self.labels
            ):
                if cancel.is_set():
                    return
                if isinstance(item, Outcome):
                    if item.finish_reason == "timeout":
                        await _event(send, {"error": {
                            "code": "timeout", "type": "timeout", "request_id": request_id,
                            "message": "generation took longer than this server's limit of "
                            f"{self.generations.limits.timeout_s:g} s (AIMASS_LLM_TIMEOUT_S)",
                        }})  # fmt: skip
                    else:
                        chunk = completion_chunk(self.kind, self.id, self.name, None, item)
                        await _event(send, chunk)
                    await send(
                        {"type": "http.response.body", "body": b"data: [DONE]\n\n",
                         "more_body": True}
                    )  # fmt: skip
                    return
                await _event(
                    send, completion_chunk(self.kind, self.id, self.name, item, first=first)
                )
                first = False
        finally:
            await send({"type": "http.response.body", "body": b"", "more_body": False})


async def _event(send: Send, value: dict[str, Any]) -> None:
    await send({"type": "http.response.body", "body": b"data: " + dumps(value) + b"\n\n",
                "more_body": True})  # fmt: skip


def model_answer(repository: ModelRepository, project: str, name: str) -> bytes:
    """``GET /v1/models/{name}``: 404 unless the deployment answers an OpenAI route."""
    if (name, project) not in listed(repository, project):
        raise HTTPError(404, f"no model {name[:128]!r} for the OpenAI routes")
    return dumps(model_entry(name, project))


def models(repository: ModelRepository, project: str) -> bytes:
    """``GET /v1/models``."""
    return dumps(models_answer(listed(repository, project)))
