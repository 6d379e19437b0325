"""Alert rules with ``for`` durations, evaluated on metric samples, sent to alert sinks.

A sample set is ``{metric: {subject: value}}`` (``p99_latency_s`` of each
deployment, ``queue_full`` of the prediction log, ...). A rule whose condition
holds for a subject becomes pending, fires once it has held ``for_s`` seconds,
and resolves when it stops holding (or its subject disappears), like
Prometheus's alerting rules. Each firing and resolution goes to every sink once
(the webhook sink also deduplicates by fingerprint) and is recorded as an event.
"""

from __future__ import annotations

import asyncio
import logging
import operator
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from aimass.entities.monitoring import AlertRule
from aimass.loop_service import LoopService
from aimass.monitoring.webhook import fingerprint
from aimass.plugins.slots import AlertSink

log = logging.getLogger("aimass.monitoring")

Samples = Mapping[str, Mapping[str, float]]
Source = Callable[[], Samples]

_OPS: dict[str, Callable[[float, float], bool]] = {
    ">": operator.gt,
    ">=": operator.ge,
    "<": operator.lt,
    "<=": operator.le,
}


@dataclass
class _State:
    pending_since: float
    firing_since: float | None = None
    value: float = 0.0


def _iso(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class AlertEngine:
    """Keeps each (rule, subject)'s state and sends transitions to the sinks."""

    def __init__(
        self,
        rules: Sequence[AlertRule],
        sinks: Sequence[AlertSink],
        *,
        on_event: Callable[[dict[str, Any]], None] | None = None,
        external_url: str = "",
    ) -> None:
        self.rules = list(rules)
        self.sinks = list(sinks)
        self.on_event = on_event
        self.external_url = external_url
        self._states: dict[tuple[str, str], _State] = {}

    def firing(self) -> list[tuple[str, str]]:
        """The (rule, subject) pairs firing now."""
        return [k for k, s in self._states.items() if s.firing_since is not None]

    def evaluate(self, samples: Samples, now: float) -> list[dict[str, Any]]:
        """Advance every rule to ``now`` (seconds since the epoch); the alerts sent."""
        sent: list[dict[str, Any]] = []
        for rule in self.rules:
            values = samples.get(rule.metric, {})
            holding = {
                subject: value
                for subject, value in values.items()
                if (rule.subject is None or subject == rule.subject)
                and _OPS[rule.op](value, rule.threshold)
            }
            for subject, value in holding.items():
                state = self._states.setdefault((rule.name, subject), _State(now))
                state.value = value
                if state.firing_since is None and now - state.pending_since >= rule.for_s:
                    state.firing_since = now
                    sent.append(self._send(rule, subject, state, "firing", now))
            for key in [k for k in self._states if k[0] == rule.name and k[1] not in holding]:
                state = self._states.pop(key)
                if state.firing_since is not None:
                    sent.append(self._send(rule, key[1], state, "resolved", now))
        return sent

    def _send(
        self, rule: AlertRule, subject: str, state: _State, status: str, now: float
    ) -> dict[str, Any]:
        labels = {
            "alertname": rule.name,
            "metric": rule.metric,
            "subject": subject,
            "severity": rule.severity,
        }
        alert = {
            "status": status,
            "labels": labels,
            "annotations": {
                "summary": f"{rule.metric} of {subject} is {state.value:.4g} "
                f"({rule.op} {rule.threshold:g} for {rule.for_s:g} s)",
            },
            "startsAt": _iso(state.firing_since or now),
            "endsAt": _iso(now) if status == "resolved" else None,
            "generatorURL": self.external_url,
            "fingerprint": fingerprint(labels),
        }
        for sink in self.sinks:
            try:
                sink.send(alert)
            except Exception as exc:
                log.warning("alert sink %s failed: %s", sink.name, exc)
        if self.on_event is not None:
            self.on_event(alert)
        return alert


class LogSink:
    """The built-in ``log`` sink: each alert as one warning line in the server log."""

    name = "log"

    def send(self, alert: Mapping[str, Any]) -> None:
        """Log the alert's status, labels and summary."""
        log.warning(
            "alert %s: %s %s",
            alert["status"],
            dict(alert["labels"]),
            alert.get("annotations", {}).get("summary", ""),
        )


class AlertEvaluator(LoopService):
    """Collects samples from its sources and advances the engine (leader only)."""

    name = "alert-evaluator"

    def __init__(self, engine: AlertEngine, sources: list[Source], interval: float = 15.0) -> None:
        super().__init__(interval)
        self.engine = engine
        self.sources = sources

    def tick(self, now: float | None = None) -> list[dict[str, Any]]:
        """One evaluation: merge every source's samples, then evaluate."""
        merged: dict[str, dict[str, float]] = {}
        for source in self.sources:
            try:
                for metric, values in source().items():
                    merged.setdefault(metric, {}).update(values)
            except Exception:
                log.exception("an alert source failed")
        return self.engine.evaluate(
            merged, now if now is not None else datetime.now(UTC).timestamp()
        )

    async def run_once(self) -> None:
        """One tick (sinks may block on network retries: off the event loop)."""
        if self.engine.rules:
            await asyncio.to_thread(self.tick)


def inference_samples(registry: Any) -> dict[str, dict[str, float]]:
    """``p99_latency_s`` and ``error_rate`` per deployment from the inference metrics.

    Both are since the process started (Prometheus's own rules compute windows:
    use ``histogram_quantile`` over ``rate`` there for a sliding p99).
    """
    buckets: dict[str, dict[float, float]] = {}
    answered: dict[str, float] = {}
    failed: dict[str, float] = {}
    for metric in registry.collect():
        for sample in metric.samples:
            deployment = sample.labels.get("deployment")
            if not deployment:
                continue
            if sample.name == "aimass_inference_request_seconds_bucket":
                bound = float(sample.labels["le"])
                per = buckets.setdefault(deployment, {})
                per[bound] = per.get(bound, 0.0) + sample.value
            elif sample.name == "aimass_inference_requests_total":
                answered[deployment] = answered.get(deployment, 0.0) + sample.value
                if not sample.labels.get("code", "").startswith("2"):
                    failed[deployment] = failed.get(deployment, 0.0) + sample.value
    p99: dict[str, float] = {}
    for deployment, per in buckets.items():
        bounds = sorted(per)
        total = per[bounds[-1]] if bounds else 0.0
        if total:
            p99[deployment] = next(b for b in bounds if per[b] >= 0.99 * total)
    errors = {d: failed.get(d, 0.0) / n for d, n in answered.items() if n}
    return {"p99_latency_s": p99, "error_rate": errors}


def failed_jobs(session: Any, since: datetime) -> dict[str, dict[str, float]]:
    """``job_failed``: per entry, the jobs that ended failed since ``since``."""
    from sqlalchemy import func, select

    from aimass.store.orm import JobRow

    rows = session.execute(
        select(JobRow.entry, func.count())
        .where(JobRow.state == "failed", JobRow.finished_at >= since)
        .group_by(JobRow.entry)
    ).all()
    return {"job_failed": {str(entry): float(count) for entry, count in rows}}
