"""Prometheus collectors for monitoring: the prediction log's queue and counters."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

if TYPE_CHECKING:
    from prometheus_client import Metric

    from aimass.monitoring.prediction_log import PredictionLog


class PredictionLogCollector(Collector):
    """``aimass_prediction_log_{queue_depth,queue_capacity,dropped_total,written_total}``."""

    def __init__(self, log: PredictionLog) -> None:
        self.log = log

    def collect(self) -> Iterator[Metric]:
        """The log's gauges and counters, read at scrape time."""
        yield GaugeMetricFamily(
            "aimass_prediction_log_queue_depth",
            "Predictions waiting in memory to be written to the log.",
            value=self.log.depth,
        )
        yield GaugeMetricFamily(
            "aimass_prediction_log_queue_capacity",
            "Predictions the log queue holds before it drops new ones.",
            value=self.log.capacity,
        )
        yield CounterMetricFamily(
            "aimass_prediction_log_dropped",
            "Sampled predictions dropped because the log queue was full.",
            value=self.log.dropped,
        )
        yield CounterMetricFamily(
            "aimass_prediction_log_written",
            "Predictions written to the log's Parquet files.",
            value=self.log.written,
        )
