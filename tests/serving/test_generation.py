"""Generation limits without a model: stream slots (429), max tokens (400), the timeout."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import pytest

from aimass.errors import InvalidInput, Overloaded
from aimass.serving.generation import GenerationLimits, Generations, Outcome, Sampling
from aimass.serving.metrics import InferenceMetrics

LABELS = ("default", "gen", "gen", "1")


@dataclass
class Done:
    prompt_tokens: int
    completion_tokens: int
    finish_reason: str


class Ticker:
    """Writes one word every ``pause`` seconds until stopped or ``max_new_tokens`` are out."""

    def __init__(self, pause: float) -> None:
        self.pause = pause

    def chat_prompt(self, messages: Sequence[Mapping[str, str]]) -> str:
        return " ".join(m["content"] for m in messages)

    def generate(
        self,
        prompt: str,
        max_new_tokens: int,
        on_text: Callable[[str], None],
        should_stop: Callable[[], bool],
        temperature: float | None = None,
        top_p: float | None = None,
        seed: int | None = None,
    ) -> Done:
        for count in range(max_new_tokens):
            if should_stop():
                return Done(1, count, "cancelled")
            on_text(f"w{count} ")
            time.sleep(self.pause)
        return Done(1, max_new_tokens, "length")


async def _collect(generations: Generations, tokens: int, cancel: threading.Event) -> list[object]:
    return [
        item
        async for item in generations.stream(Ticker(0.01), "p", Sampling(tokens), cancel, LABELS)
    ]


def test_slots_tokens_and_timeout_are_enforced() -> None:
    metrics = InferenceMetrics()
    generations = Generations(
        GenerationLimits(max_tokens=100, max_streams=1, timeout_s=0.2), metrics.generation
    )
    with pytest.raises(InvalidInput, match="over this server's limit of 100"):
        generations.check(101)
    assert generations.check(None) == 100 and generations.check(7) == 7
    generations.admit()
    with pytest.raises(Overloaded, match="all 1 generation slots"):
        generations.admit()
    generations.release()
    generations.admit()  # the slot came back

    items = asyncio.run(_collect(generations, 100, threading.Event()))
    outcome = items[-1]
    assert isinstance(outcome, Outcome) and outcome.finish_reason == "timeout"
    assert 0 < outcome.completion_tokens < 100 and outcome.first_text_s is not None
    assert b"aimass_generation_time_to_first_token_seconds_count" in metrics.render()
    generations.close()


def test_a_cancelled_stream_stops_its_generator() -> None:
    generations = Generations(GenerationLimits(timeout_s=30))
    cancel = threading.Event()

    async def take_three() -> int:
        seen = 0
        async for item in generations.stream(Ticker(0.01), "p", Sampling(500), cancel, LABELS):
            seen += 1
            if seen == 3:
                cancel.set()
            if isinstance(item, Outcome):
                assert item.finish_reason == "cancelled"
                return item.completion_tokens
        raise AssertionError("no outcome")

    assert asyncio.run(take_three()) < 20
    generations.close()
