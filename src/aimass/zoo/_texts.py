"""The generated ``text_topics`` set: short sentences about four topics, from templates.

Each sentence fills a template with its topic's words and with filler words
every topic shares; now and then a slot takes another topic's word, so the
classes overlap a little and the task is not a pure lookup. The generator is
seeded: the same rows come out on every machine.
"""

from __future__ import annotations

import random
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pandas as pd

ROWS_PER_TOPIC = 120
SEED = 5
#: The chance that a topic slot is filled from another topic.
NOISE = 0.15

_TEMPLATES = (
    "the {noun} {verb} the {noun2} {time}",
    "{time} the {adj} {noun} {verb} again",
    "did you see how the {noun} {verb} {time}",
    "i think the {adj} {noun} {verb} the {noun2}",
    "{name} says the {noun} {verb} {time}",
    "everyone talked about the {adj} {noun2} {time}",
    "nobody expected the {noun} to be so {adj}",
    "the {adj} {noun2} was all over the news {time}",
)

_WORDS: dict[str, dict[str, tuple[str, ...]]] = {
    "sports": {
        "noun": ("striker", "goalkeeper", "team", "coach", "referee", "runner", "champion"),
        "noun2": ("match", "league", "final", "stadium", "penalty", "tournament", "season"),
        "verb": ("won", "scored against", "defended", "lost", "trained for", "celebrated"),
        "adj": ("fast", "tired", "unbeaten", "injured", "home", "rival"),
    },
    "technology": {
        "noun": ("laptop", "phone", "server", "startup", "chip", "robot", "browser"),
        "noun2": ("software", "update", "network", "battery", "processor", "app", "cloud"),
        "verb": ("crashed", "installed", "upgraded", "released", "downloaded", "rebooted"),
        "adj": ("new", "faster", "wireless", "smart", "digital", "open source"),
    },
    "cooking": {
        "noun": ("chef", "baker", "oven", "recipe", "kitchen", "cook", "restaurant"),
        "noun2": ("soup", "bread", "pasta", "sauce", "cake", "salad", "garlic"),
        "verb": ("baked", "stirred", "roasted", "seasoned", "tasted", "burned"),
        "adj": ("spicy", "sweet", "crispy", "fresh", "salty", "homemade"),
    },
    "weather": {
        "noun": ("storm", "wind", "forecast", "cloud", "sun", "rain", "fog"),
        "noun2": ("coast", "valley", "temperature", "snow", "thunder", "sky", "flood"),
        "verb": ("hit", "cooled", "soaked", "covered", "warmed", "swept across"),
        "adj": ("cold", "humid", "sunny", "freezing", "stormy", "windy"),
    },
}
_SHARED = {
    "time": ("today", "yesterday", "this morning", "last night", "on sunday", "all week"),
    "name": ("anna", "the reporter", "my neighbour", "the teacher", "dad", "sam"),
}


def text_topics_rows(
    rows_per_topic: int = ROWS_PER_TOPIC, seed: int = SEED
) -> list[tuple[str, str]]:
    """(text, label) pairs, topic by topic, in a seeded shuffled order."""
    rng = random.Random(seed)
    topics = sorted(_WORDS)
    rows: list[tuple[str, str]] = []
    for label in topics:
        for _ in range(rows_per_topic):
            fill = {slot: rng.choice(choices) for slot, choices in _SHARED.items()}
            for slot in _WORDS[label]:
                source = rng.choice(topics) if rng.random() < NOISE else label
                fill[slot] = rng.choice(_WORDS[source][slot])
            rows.append((rng.choice(_TEMPLATES).format(**fill), label))
    rng.shuffle(rows)
    return rows


def text_topics_frame() -> pd.DataFrame:
    """The set as a DataFrame with columns ``text`` and ``label``."""
    import pandas as pd

    return pd.DataFrame(text_topics_rows(), columns=["text", "label"])


def text_topics_pairs_frame() -> pd.DataFrame:
    """Pairs of sentences on one topic (consecutive rows of a topic): text_a, text_b, label."""
    import pandas as pd

    by_topic: dict[str, list[str]] = {}
    for text, label in text_topics_rows():
        by_topic.setdefault(label, []).append(text)
    pairs = [
        (texts[i], texts[i + 1], label)
        for label, texts in sorted(by_topic.items())
        for i in range(0, len(texts) - 1, 2)
    ]
    random.Random(SEED).shuffle(pairs)
    return pd.DataFrame(pairs, columns=["text_a", "text_b", "label"])
