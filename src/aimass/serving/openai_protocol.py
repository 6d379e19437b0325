"""The OpenAI-compatible wire format: requests parsed, answers and stream chunks built.

Fields the OpenAI API has and aimass does not use (``user``, ``logit_bias``, ...)
are accepted and ignored, so clients send what they always send; fields that
change the answer and are not supported (``n`` above 1, token-id prompts) are
refused with a message naming them.
"""

from __future__ import annotations

import base64
import time
from typing import TYPE_CHECKING, Any, Literal, TypeVar

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from aimass.errors import InvalidInput
from aimass.validation import parse_json

if TYPE_CHECKING:
    from aimass.serving.generation import Outcome
    from aimass.serving.protocol import Array

MAX_INPUTS = 2048
_M = TypeVar("_M", bound=BaseModel)


class _Request(BaseModel):
    model_config = ConfigDict(extra="ignore")

    model: str = Field(min_length=1, max_length=256)


class EmbeddingsRequest(_Request):
    """``POST /v1/embeddings``."""

    input: str | list[str]
    encoding_format: Literal["float", "base64"] = "float"
    dimensions: int | None = None

    def texts(self) -> list[str]:
        """The input strings (at least one, at most MAX_INPUTS)."""
        items = [self.input] if isinstance(self.input, str) else self.input
        if not items:
            raise InvalidInput("input must hold at least one string")
        if len(items) > MAX_INPUTS:
            raise InvalidInput(f"input holds {len(items)} strings; at most {MAX_INPUTS}")
        return items


class _Generation(_Request):
    max_tokens: int | None = None
    temperature: float | None = Field(default=None, ge=0, le=2)
    top_p: float | None = Field(default=None, gt=0, le=1)
    seed: int | None = None
    stream: bool = False
    n: int = 1

    def model_post_init(self, _context: object) -> None:
        if self.n != 1:
            raise ValueError("n must be 1: one choice per request")


class Message(BaseModel):
    """One chat message (text content only)."""

    model_config = ConfigDict(extra="ignore")

    role: Literal["system", "user", "assistant", "developer", "tool"]
    content: str | list[dict[str, Any]]

    def text(self) -> str:
        """The text of the message; text parts of a list are joined."""
        if isinstance(self.content, str):
            return self.content
        parts = []
        for part in self.content:
            if part.get("type") != "text" or not isinstance(part.get("text"), str):
                raise InvalidInput("only text message parts are supported")
            parts.append(part["text"])
        return "".join(parts)


class ChatRequest(_Generation):
    """``POST /v1/chat/completions``."""

    messages: list[Message] = Field(min_length=1, max_length=1024)
    max_completion_tokens: int | None = None

    def wanted_tokens(self) -> int | None:
        """``max_completion_tokens`` (the newer name) or ``max_tokens``."""
        return self.max_completion_tokens or self.max_tokens


class CompletionRequest(_Generation):
    """``POST /v1/completions``."""

    prompt: str | list[str]

    def text(self) -> str:
        """The one prompt."""
        if isinstance(self.prompt, str):
            return self.prompt
        if len(self.prompt) != 1:
            raise InvalidInput("send one prompt per request")
        return self.prompt[0]


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
