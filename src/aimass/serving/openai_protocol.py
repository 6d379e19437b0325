"""The OpenAI-compatible wire format: requests parsed, answers and stream chunks built.

The request models are ``aimass.entities.openai``'s.
"""

from __future__ import annotations

import base64
import time
from typing import TYPE_CHECKING, Any, Literal, TypeVar

import numpy as np
from pydantic import BaseModel

from aimass.validation import parse_json

if TYPE_CHECKING:
    from aimass.serving.generation import Outcome
    from aimass.serving.protocol import Array

_M = TypeVar("_M", bound=BaseModel)


def parse_request(model: type[_M], body: bytes, route: str) -> _M:
    """Validate a request body into ``model`` (422 naming the fields that are wrong)."""
    return parse_json(model, body, f"{route} request")


def embeddings_answer(
    name: str, vectors: Array, encoding: str, prompt_tokens: int
) -> dict[str, Any]:
    """The ``/v1/embeddings`` answer (base64: little-endian float32, as OpenAI sends)."""
    data = []
    for i, row in enumerate(np.asarray(vectors, dtype="<f4")):
        value: object = (
            base64.b64encode(row.tobytes()).decode() if encoding == "base64" else row.tolist()
        )
        data.append({"object": "embedding", "index": i, "embedding": value})
    usage = {"prompt_tokens": prompt_tokens, "total_tokens": prompt_tokens}
    return {"object": "list", "data": data, "model": name, "usage": usage}


def _usage(outcome: Outcome) -> dict[str, int]:
    return {
        "prompt_tokens": outcome.prompt_tokens,
        "completion_tokens": outcome.completion_tokens,
        "total_tokens": outcome.prompt_tokens + outcome.completion_tokens,
    }


def finish_reason(outcome: Outcome) -> str:
    """OpenAI's finish reason: ``stop`` or ``length`` (a timeout ends like a length limit)."""
    return "stop" if outcome.finish_reason == "stop" else "length"


def completion_answer(
    kind: Literal["chat", "text"], id_: str, name: str, text: str, outcome: Outcome
) -> dict[str, Any]:
    """A whole (not streamed) completion."""
    choice: dict[str, Any] = {"index": 0, "finish_reason": finish_reason(outcome)}
    if kind == "chat":
        choice["message"] = {"role": "assistant", "content": text}
        obj = "chat.completion"
    else:
        choice["text"] = text
        choice["logprobs"] = None
        obj = "text_completion"
    return {
        "id": id_, "object": obj, "created": int(time.time()), "model": name,
        "choices": [choice], "usage": _usage(outcome),
    }  # fmt: skip


def completion_chunk(
    kind: Literal["chat", "text"],
    id_: str,
    name: str,
    text: str | None,
    outcome: Outcome | None = None,
    first: bool = False,
) -> dict[str, Any]:
    """One streamed chunk: text, or the last one with the finish reason and usage."""
    reason = finish_reason(outcome) if outcome is not None else None
    choice: dict[str, Any] = {"index": 0, "finish_reason": reason}
    if kind == "chat":
        delta: dict[str, str] = {"role": "assistant"} if first else {}
        if text is not None:
            delta["content"] = text
        choice["delta"] = delta
        obj = "chat.completion.chunk"
    else:
        choice["text"] = text or ""
        choice["logprobs"] = None
        obj = "text_completion"
    chunk: dict[str, Any] = {
        "id": id_, "object": obj, "created": int(time.time()), "model": name, "choices": [choice],
    }  # fmt: skip
    if outcome is not None:
        chunk["usage"] = _usage(outcome)
    return chunk


def models_answer(names: list[tuple[str, str]]) -> dict[str, Any]:
    """``GET /v1/models``: deployment names (the ``model`` field) and their projects."""
    return {"object": "list", "data": [model_entry(n, p) for n, p in names]}


def model_entry(name: str, project: str) -> dict[str, Any]:
    """One entry of ``/v1/models``."""
    return {"id": name, "object": "model", "created": 0, "owned_by": project}
