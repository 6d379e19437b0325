"""The OpenAI-compatible routes' wire models: requests and answers (``/v1/...``).

Fields the OpenAI API has and aimass does not use (``user``, ``logit_bias``, ...)
are accepted and ignored, so clients send what they always send; fields that
change the answer and are not supported (``n`` above 1, token-id prompts) are
refused with a message naming them.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from aimass.errors import InvalidInput

MAX_INPUTS = 2048


class _Request(BaseModel):
    """What every OpenAI request names: the deployment (``model``)."""

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
    """What both completion routes take."""

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


class _Answer(BaseModel):
    model_config = ConfigDict(extra="forbid")


class OpenAIModel(_Answer):
    """One deployment the OpenAI routes answer."""

    id: str
    object: Literal["model"] = "model"
    created: int
    owned_by: str


class OpenAIModelList(_Answer):
    """``GET /v1/models``."""

    object: Literal["list"] = "list"
    data: list[OpenAIModel]


class Usage(_Answer):
    """Token counts of one request."""

    prompt_tokens: int
    completion_tokens: int = 0
    total_tokens: int


class Embedding(_Answer):
    """One input's vector (a list of floats, or base64 of little-endian float32)."""

    object: Literal["embedding"] = "embedding"
    index: int
    embedding: list[float] | str


class EmbeddingList(_Answer):
    """``POST /v1/embeddings``."""

    object: Literal["list"] = "list"
    data: list[Embedding]
    model: str
    usage: Usage


class ChatMessage(_Answer):
    """The assistant's answer."""

    role: Literal["assistant"] = "assistant"
    content: str


class Choice(_Answer):
    """One choice of a completion (``message`` for chat, ``text`` for a completion)."""

    index: int
    finish_reason: Literal["stop", "length"] | None
    message: ChatMessage | None = None
    text: str | None = None
    logprobs: None = None


class Completion(_Answer):
    """``POST /v1/chat/completions`` and ``/v1/completions`` without ``stream`` (with it,
    ``text/event-stream`` of chunks of this shape, ``delta`` in place of ``message``)."""

    id: str
    object: Literal["chat.completion", "text_completion"]
    created: int
    model: str
    choices: list[Choice]
    usage: Usage
