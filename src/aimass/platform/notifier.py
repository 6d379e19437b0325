"""``Notifier``: "something changed under this topic", told to whoever subscribed.

Routes and services call ``Platform.notify(topic)`` after a write commits,
instead of reaching for a loop and waking it. ``LocalNotifier`` wakes the
subscribers of this process at once. It is the seam for several processes:
a PostgreSQL notifier will ``NOTIFY aimass_<topic>`` in ``publish`` and run a
``LISTEN`` connection whose messages call the same local callbacks, so other
processes and servers wake too (ARCHITECTURE.md, "Waking loops").
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Literal, Protocol, get_args

log = logging.getLogger("aimass.platform")

#: What a write can change; each background service listens to the topics it reconciles.
Topic = Literal["jobs", "deployments", "schedules", "pipelines"]
TOPICS: tuple[Topic, ...] = get_args(Topic)

#: A subscriber: called with no argument, from any thread; it must not block.
Callback = Callable[[], None]


class Notifier(Protocol):
    """Publish a topic; every subscriber of it, here or (later) in other processes, is called."""

    def publish(self, topic: Topic) -> None:
        """Tell the topic's subscribers that its state changed (after the write committed)."""

    def subscribe(self, topic: Topic, callback: Callback) -> None:
        """Call ``callback`` whenever ``topic`` is published."""


class LocalNotifier:
    """The notifier of one process: ``publish`` calls each subscriber at once, from any thread.

    Subscribers are expected to be cheap and thread-safe (``LoopService.wake``
    is); one that raises is logged and the others are still called.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._subscribers: dict[Topic, tuple[Callback, ...]] = {}

    def subscribe(self, topic: Topic, callback: Callback) -> None:
        """Call ``callback`` whenever ``topic`` is published."""
        if topic not in TOPICS:
            raise ValueError(f"unknown topic {topic!r}; one of {', '.join(TOPICS)}")
        with self._lock:
            self._subscribers[topic] = (*self._subscribers.get(topic, ()), callback)

    def publish(self, topic: Topic) -> None:
        """Call every subscriber of ``topic`` now, on this thread."""
        for callback in self._subscribers.get(topic, ()):  # a tuple: safe to read unlocked
            try:
                callback()
            except Exception:
                log.exception("a subscriber of %r failed; the others still run", topic)
