"""Prometheus metrics of the inference path, in a registry of their own."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST as _CONTENT_TYPE
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.registry import Collector

#: The content type of ``render()``.
CONTENT_TYPE: str = _CONTENT_TYPE

_LABELS = ("project", "deployment", "model", "version")
_LATENCY_BUCKETS = (
    0.0002, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
)  # fmt: skip
_QUEUE_BUCKETS = (0.00005, 0.0001, 0.0002, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.05, 0.1, 1.0)
_BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)


class VersionMetrics:
    """The metric children of one served version, bound once so the hot path skips label lookups."""

    __slots__ = (
        "_batch",
        "_closed",
        "_codes",
        "_labels",
        "_latency",
        "_metrics",
        "_queue",
        "_rejected",
    )

    def __init__(self, metrics: InferenceMetrics, labels: tuple[str, str, str, str]) -> None:
        self._metrics = metrics
        self._labels = labels
        self._codes: dict[int, Any] = {}
        self._latency = metrics.request_seconds.labels(*labels)
        self._batch = metrics.batch_size.labels(*labels)
        self._queue = metrics.queue_seconds.labels(*labels)
        self._rejected: dict[str, Any] = {}
        self._closed: dict[str, Any] = {}

    def request(self, code: int, seconds: float | None) -> None:
        """Count one answered request, and its latency when it reached the model."""
        child = self._codes.get(code)
        if child is None:
            child = self._metrics.requests.labels(*self._labels, str(code))
            self._codes[code] = child
        child.inc()
        if seconds is not None:
            self._latency.observe(seconds)

    def reject(self, reason: str) -> None:
        """Count one request refused before it reached the model (``queue_full``)."""
        child = self._rejected.get(reason)
        if child is None:
            child = self._metrics.rejected.labels(*self._labels, reason)
            self._rejected[reason] = child
        child.inc()

    def member(self, model: str, version: str) -> VersionMetrics:
        """The children of an ensemble's member: same project and deployment, its model/version."""
        project, deployment, _, _ = self._labels
        return self._metrics.version(project, deployment, model, version)

    def batch(self, size: int, waits: Sequence[float], reason: str | None = None) -> None:
        """Record one batch's size, how long each of its requests waited in the queue, and
        what closed it (``serving.batcher.CloseReason``; None: it had no batcher)."""
        self._batch.observe(size)
        observe = self._queue.observe
        for wait in waits:
            observe(wait)
        if reason is not None:
            child = self._closed.get(reason)
            if child is None:
                child = self._metrics.batches_closed.labels(*self._labels, reason)
                self._closed[reason] = child
            child.inc()


_TTFT_BUCKETS = (0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0)
_RATE_BUCKETS = (1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000)


class GenerationMetrics:
    """Text generation (the OpenAI routes): tokens, tokens/s, time to first token, streams
    running and waiting for their model."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.tokens = Counter(
            "aimass_generation_tokens", "Tokens generated.", _LABELS, registry=registry
        )
        self.seconds = Counter(
            "aimass_generation_seconds",
            "Time spent generating (tokens / seconds is the rate).",
            _LABELS,
            registry=registry,
        )
        self.rate = Histogram(
            "aimass_generation_tokens_per_second",
            "Tokens per second of each generation.",
            _LABELS,
            buckets=_RATE_BUCKETS,
            registry=registry,
        )
        self.ttft = Histogram(
            "aimass_generation_time_to_first_token_seconds",
            "Time from a generation's start to its first text.",
            _LABELS,
            buckets=_TTFT_BUCKETS,
            registry=registry,
        )
        self.running = Gauge(
            "aimass_generation_streams",
            "Generations running now.",
            _LABELS,
            registry=registry,
            multiprocess_mode="livesum",
        )
        self.waiting = Gauge(
            "aimass_generation_queue_length",
            "Generations admitted and waiting for their model.",
            _LABELS,
            registry=registry,
            multiprocess_mode="livesum",
        )

    def bind(self, labels: tuple[str, str, str, str]) -> BoundGeneration:
        """The children for one served version."""
        return BoundGeneration(self, labels)


class BoundGeneration:
    """One version's generation metrics."""

    def __init__(self, metrics: GenerationMetrics, labels: tuple[str, str, str, str]) -> None:
        self._tokens = metrics.tokens.labels(*labels)
        self._seconds = metrics.seconds.labels(*labels)
        self._rate = metrics.rate.labels(*labels)
        self._ttft = metrics.ttft.labels(*labels)
        self._running = metrics.running.labels(*labels)
        self._waiting = metrics.waiting.labels(*labels)

    def queued(self, delta: int) -> None:
        """One more (or fewer) generation waiting for its model."""
        self._waiting.inc(delta)

    def active(self, delta: int) -> None:
        """One more (or fewer) generation running."""
        self._running.inc(delta)

    def finished(self, tokens: int, seconds: float, first_text_s: float | None) -> None:
        """Record a finished generation."""
        self._tokens.inc(tokens)
        self._seconds.inc(seconds)
        if seconds > 0 and tokens:
            self._rate.observe(tokens / seconds)
        if first_text_s is not None:
            self._ttft.observe(first_text_s)


class InferenceMetrics:
    """Requests, latency, batch size and queue time per deployment, model and version.

    The metrics live in their own ``CollectorRegistry`` (pass one to share it), so
    that several apps in one process, tests among them, never collide.
    """

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "aimass_inference_requests",
            "Inference requests answered, by status code.",
            [*_LABELS, "code"],
            registry=self.registry,
        )
        self.rejected = Counter(
            "aimass_inference_rejected",
            "Inference requests refused before reaching the model, by reason (queue_full: "
            "the deployment's queue held max_queue requests; queue_wait: the request waited "
            "past max_queue_wait_s for its batch; both answered 429).",
            [*_LABELS, "reason"],
            registry=self.registry,
        )
        self.refused = Counter(
            "aimass_http_refused",
            "Requests the server refused before its app ran, by reason (inflight: the "
            "process ran max_inflight inference requests, answered 503 with Retry-After; "
            "connections: past max_connections, answered 503 and closed).",
            ["reason"],
            registry=self.registry,
        )
        self.request_seconds = Histogram(
            "aimass_inference_request_seconds",
            "Time from a request's arrival to its answer, for requests that reached a model.",
            _LABELS,
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.batch_size = Histogram(
            "aimass_inference_batch_size",
            "Requests merged into one predict call.",
            _LABELS,
            buckets=_BATCH_BUCKETS,
            registry=self.registry,
        )
        self.queue_seconds = Histogram(
            "aimass_inference_queue_seconds",
            "Time a request waited in its model's batch queue.",
            _LABELS,
            buckets=_QUEUE_BUCKETS,
            registry=self.registry,
        )
        self.batches_closed = Counter(
            "aimass_inference_batches_closed",
            "Batches by what closed them: full (max_batch_size), joined (every request in "
            "flight for the deployment had joined), idle, max_delay, closing, nodelay.",
            [*_LABELS, "reason"],
            registry=self.registry,
        )
        self._versions: dict[tuple[str, str, str, str], VersionMetrics] = {}
        self.generation = GenerationMetrics(self.registry)
        #: Collectors of figures that are the machine's, not this process's (node metrics).
        self.machine_collectors: list[Collector] = []

    def add_machine_collector(self, collector: Collector) -> None:
        """Export ``collector`` from every process as it is (its figures are the machine's)."""
        self.registry.register(collector)
        self.machine_collectors.append(collector)

    def version(self, project: str, deployment: str, model: str, version: str) -> VersionMetrics:
        """Return the (cached) metric children for one served version."""
        key = (project, deployment, model, version)
        bound = self._versions.get(key)
        if bound is None:
            bound = VersionMetrics(self, key)
            self._versions[key] = bound
        return bound

    def render(self) -> bytes:
        """The registry in the Prometheus text format.

        With several workers (``PROMETHEUS_MULTIPROC_DIR`` set by ``aimass server``)
        the metrics are every worker's, summed from prometheus-client's shared
        files, so each scrape sees the whole server whichever worker answers.
        """
        if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            from prometheus_client.multiprocess import MultiProcessCollector

            registry = CollectorRegistry()
            MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
            for collector in self.machine_collectors:
                registry.register(collector)
            return generate_latest(registry)
        return generate_latest(self.registry)
