"""Prometheus metrics of the prediction log (multiprocess-safe: prometheus-client's own types)."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any, Protocol

from prometheus_client import Counter, Gauge

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry


class _Log(Protocol):
    """What these metrics read of ``PredictionLog`` (named by shape: no import cycle)."""

    capacity: int
    metrics: Any

    @property
    def depth(self) -> int:
        """Records waiting."""
        ...


class PredictionLogMetrics:
    """``aimass_prediction_log_{queue_depth,queue_capacity,dropped_total,written_total}``.

    Counters and gauges of prometheus-client, so that with several workers
    (multiprocess mode) a scrape sums every worker's. The queue depth is read at
    scrape time in a single process, and set at each writer tick with several.
    """

    def __init__(self, log: _Log, registry: CollectorRegistry) -> None:
        self.log = log
        self.depth = Gauge(
            "aimass_prediction_log_queue_depth",
            "Predictions waiting in memory to be written to the log.",
            registry=registry,
            multiprocess_mode="livesum",
        )
        self.capacity = Gauge(
            "aimass_prediction_log_queue_capacity",
            "Predictions the log queue holds before it drops new ones.",
            registry=registry,
            multiprocess_mode="livemax",
        )
        self.dropped = Counter(
            "aimass_prediction_log_dropped",
            "Sampled predictions dropped because the log queue was full.",
            registry=registry,
        )
        self.written = Counter(
            "aimass_prediction_log_written",
            "Predictions written to the log's Parquet files.",
            registry=registry,
        )
        self.capacity.set(log.capacity)
        if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            self.depth.set_function(lambda: log.depth)
        log.metrics = self
