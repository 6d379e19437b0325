"""Text generation for streaming routes: limits, a slot per stream, cancellation, metrics.

No HTTP here. ``Generations.stream`` runs a generator's ``generate`` on a worker
thread and hands its text to the event loop as it is decoded; the caller sets
``cancel`` when its client goes away, which stops generation at the next token.
Limits: ``max_tokens`` per request (400 above it), ``max_streams`` generations at
once in this process (429 for one more), and ``timeout_s`` per generation (it
stops, and the result says ``timeout``).
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from aimass.errors import InvalidInput, Overloaded

if TYPE_CHECKING:
    from aimass.serving.metrics import GenerationMetrics


class Finished(Protocol):
    """How a generation ended (``flavors._hf_predictors.Generated``)."""

    prompt_tokens: int
    completion_tokens: int
    finish_reason: str


class TextGenerator(Protocol):
    """A predictor that generates text (the transformers flavor's text-generation models)."""

    def chat_prompt(self, messages: Sequence[Mapping[str, str]]) -> str:
        """The prompt for a list of chat messages."""
        ...

    def generate(
        self,
        prompt: str,
        max_new_tokens: int,
        on_text: Callable[[str], None],
        should_stop: Callable[[], bool],
        temperature: float | None = None,
        top_p: float | None = None,
        seed: int | None = None,
    ) -> Finished:
        """Generate after ``prompt``, calling ``on_text`` with each new piece of text."""
        ...


@dataclass(frozen=True)
class GenerationLimits:
    """Per-request and per-process bounds on generation."""

    max_tokens: int = 512
    max_streams: int = 4
    timeout_s: float = 60.0


@dataclass
class Sampling:
    """What the request asks of the sampler (greedy when ``temperature`` is 0 or None)."""

    max_tokens: int
    temperature: float | None = None
    top_p: float | None = None
    seed: int | None = None


@dataclass
class Outcome:
    """The end of one generation: token counts, why it stopped, time to first text."""

    prompt_tokens: int
    completion_tokens: int
    #: "stop", "length", "cancelled" (the client went away) or "timeout".
    finish_reason: str
    seconds: float
    first_text_s: float | None


class Generations:
    """Admits, runs and measures the generations of this process."""

    def __init__(self, limits: GenerationLimits, metrics: GenerationMetrics | None = None) -> None:
        self.limits = limits
        self.metrics = metrics
        self._admitted = 0
        self._lock = threading.Lock()
        self._models: dict[int, threading.Lock] = {}
        self._executor = ThreadPoolExecutor(
            max_workers=limits.max_streams, thread_name_prefix="aimass-generate"
        )

    def check(self, max_tokens: int | None) -> int:
        """The number of new tokens to allow: the request's, within the limit (400 above)."""
        if max_tokens is None:
            return min(self.limits.max_tokens, 256)
        if max_tokens < 1:
            raise InvalidInput("max_tokens must be at least 1")
        if max_tokens > self.limits.max_tokens:
            raise InvalidInput(
                f"max_tokens {max_tokens} is over this server's limit of "
                f"{self.limits.max_tokens} (AIMASS_LLM_MAX_TOKENS)"
            )
        return max_tokens

    def admit(self) -> None:
        """Take a stream slot or raise Overloaded (429) when all ``max_streams`` are taken."""
        with self._lock:
            if self._admitted >= self.limits.max_streams:
                raise Overloaded(
                    f"all {self.limits.max_streams} generation slots of this server are busy "
                    "(AIMASS_LLM_MAX_STREAMS); retry shortly"
                )
            self._admitted += 1

    def release(self) -> None:
        """Give back a slot taken by ``admit``."""
        with self._lock:
            self._admitted -= 1

    async def stream(
        self,
        generator: TextGenerator,
        prompt: str,
        sampling: Sampling,
        cancel: threading.Event,
        labels: tuple[str, str, str, str],
    ) -> AsyncIterator[str | Outcome]:
        """Yield text pieces as they are decoded, then the ``Outcome``; needs a slot (``admit``)."""
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[str | Outcome | BaseException] = asyncio.Queue()
        started = time.perf_counter()
        deadline = time.monotonic() + self.limits.timeout_s
        first: list[float] = []
        timed_out = threading.Event()
        metrics = self.metrics.bind(labels) if self.metrics is not None else None

        def on_text(text: str) -> None:
            if not first:
                first.append(time.perf_counter() - started)
            loop.call_soon_threadsafe(queue.put_nowait, text)

        def should_stop() -> bool:
            if time.monotonic() > deadline:
                timed_out.set()
            return cancel.is_set() or timed_out.is_set()

        def run() -> None:
            try:
                # One generation at a time per model: concurrent ones would share its cores.
                with self._model_lock(generator):
                    if metrics is not None:
                        metrics.queued(-1)
                        metrics.active(1)
                    try:
                        done = generator.generate(
                            prompt, sampling.max_tokens, on_text, should_stop,
                            sampling.temperature, sampling.top_p, sampling.seed,
                        )  # fmt: skip
                    finally:
                        if metrics is not None:
                            metrics.active(-1)
                reason = done.finish_reason
                if reason == "cancelled" and timed_out.is_set() and not cancel.is_set():
                    reason = "timeout"
                seconds = time.perf_counter() - started
                outcome = Outcome(
                    done.prompt_tokens, done.completion_tokens, reason, seconds,
                    first[0] if first else None,
                )  # fmt: skip
                if metrics is not None:
                    metrics.finished(outcome.completion_tokens, seconds, outcome.first_text_s)
                loop.call_soon_threadsafe(queue.put_nowait, outcome)
            except BaseException as exc:
                loop.call_soon_threadsafe(queue.put_nowait, exc)

        if metrics is not None:
            metrics.queued(1)
        future = loop.run_in_executor(self._executor, run)
        ended = False
        try:
            while True:
                item = await queue.get()
                if isinstance(item, BaseException):
                    raise item
                ended = isinstance(item, Outcome)
                yield item
                if ended:
                    return
        finally:
            if not ended:
                cancel.set()  # the consumer stopped early (error, disconnect): stop generating
            await asyncio.shield(future)

    def _model_lock(self, generator: TextGenerator) -> threading.Lock:
        with self._lock:
            lock = self._models.get(id(generator))
            if lock is None:
                lock = self._models[id(generator)] = threading.Lock()
            return lock

    def close(self) -> None:
        """Stop the worker threads once their generations end."""
        self._executor.shutdown(wait=False, cancel_futures=True)
