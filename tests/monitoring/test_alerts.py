"""Alerts: rules with ``for`` durations, Alertmanager v4 webhooks to a real receiver, SSRF."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from aimass.entities.monitoring import AlertRule
from aimass.errors import Forbidden
from aimass.monitoring.alerts import AlertEngine
from aimass.monitoring.webhook import DeliveryFailed, TargetPolicy, WebhookSink
from aimass.plugins import load_plugins
from aimass.store.db import Database


class Receiver:
    """A real HTTP server that records the bodies POSTed to it and answers ``status``."""

    def __init__(self) -> None:
        self.bodies: list[dict[str, Any]] = []
        self.status = 200
        self.redirect: str | None = None
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers["Content-Length"])
                receiver.bodies.append(json.loads(self.rfile.read(length)))
                if receiver.redirect is not None:
                    self.send_response(307)
                    self.send_header("Location", receiver.redirect)
                else:
                    self.send_response(receiver.status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    found = Receiver()
    yield found
    found.server.shutdown()
    found.server.server_close()


def _sink(url: str, **kwargs: Any) -> WebhookSink:
    # The receiver listens on loopback, so the admin allows 127.0.0.1 (and only that).
    return WebhookSink(url, TargetPolicy(allowed=["127.0.0.1"]), backoff_s=0.01, **kwargs)


def test_a_rule_fires_after_its_for_duration_then_resolves(receiver: Receiver) -> None:
    rule = AlertRule(name="SlowModel", metric="p99_latency_s", threshold=0.5, for_s=30)
    events: list[dict[str, Any]] = []
    engine = AlertEngine([rule], [_sink(receiver.url)], on_event=events.append)
    slow = {"p99_latency_s": {"iris": 0.9, "wine": 0.1}}
    assert engine.evaluate(slow, now=1000.0) == []  # pending, not firing yet
    assert engine.evaluate(slow, now=1020.0) == []
    fired = engine.evaluate(slow, now=1030.0)
    assert [a["labels"]["subject"] for a in fired] == ["iris"]
    assert engine.evaluate(slow, now=1040.0) == []  # still firing: not sent again
    resolved = engine.evaluate({"p99_latency_s": {"iris": 0.2}}, now=1050.0)
    assert [a["status"] for a in resolved] == ["resolved"]

    firing_body, resolved_body = receiver.bodies
    assert firing_body["version"] == "4" and firing_body["status"] == "firing"
    assert firing_body["groupLabels"] == {"alertname": "SlowModel"}
    for key in ("groupKey", "truncatedAlerts", "receiver", "commonLabels", "externalURL"):
        assert key in firing_body
    (alert,) = firing_body["alerts"]
    assert alert["labels"]["subject"] == "iris" and alert["endsAt"] == "0001-01-01T00:00:00Z"
    assert set(alert) == {
        "status", "labels", "annotations", "startsAt", "endsAt", "generatorURL", "fingerprint",
    }  # fmt: skip
    assert resolved_body["status"] == "resolved"
    (done,) = resolved_body["alerts"]
    assert done["fingerprint"] == alert["fingerprint"] and done["endsAt"] != alert["endsAt"]
    assert [e["status"] for e in events] == ["firing", "resolved"]


def test_a_failing_receiver_gets_retries_and_a_repeat_is_deduplicated(
    receiver: Receiver,
) -> None:
    receiver.status = 503
    sink = _sink(receiver.url, retries=3)
    alert = {"status": "firing", "labels": {"alertname": "QueueFull"}, "startsAt": "now"}
    with pytest.raises(DeliveryFailed, match="HTTP 503"):
        sink.send(alert)
    assert len(receiver.bodies) == 3
    receiver.status = 200
    sink.send(alert)
    sink.send(alert)  # same fingerprint and status: sent once
    assert len(receiver.bodies) == 4


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:9/hook",
        "http://169.254.169.254/latest/meta-data/",
        "http://localhost:9/hook",  # a name that resolves to a loopback address
        "http://[::1]:9/hook",
        "http://10.1.2.3/hook",
    ],
)
def test_internal_targets_are_refused_unless_allowed(url: str) -> None:
    with pytest.raises(Forbidden, match="internal address"):
        WebhookSink(url).deliver({"alerts": []})


def test_a_redirect_to_an_internal_address_is_refused(receiver: Receiver) -> None:
    receiver.redirect = "http://169.254.169.254/latest/meta-data/"
    with pytest.raises(Forbidden, match=r"169\.254\.169\.254"):
        _sink(receiver.url).deliver({"alerts": []})
    assert len(receiver.bodies) == 1  # the allowed hop only


def test_a_bad_scheme_is_refused() -> None:
    from aimass.errors import InvalidInput

    with pytest.raises(InvalidInput, match="http"):
        WebhookSink("file:///etc/passwd").deliver({})


def test_the_log_sink_is_a_builtin_plugin() -> None:
    assert "log" in load_plugins().alert_sinks


def test_p99_and_error_rate_come_from_the_inference_metrics() -> None:
    from aimass.monitoring.alerts import inference_samples
    from aimass.serving.metrics import InferenceMetrics

    metrics = InferenceMetrics()
    iris = metrics.version("default", "iris", "iris", "1")
    for _ in range(98):
        iris.request(200, 0.003)
    iris.request(200, 0.8)
    iris.request(500, None)
    samples = inference_samples(metrics.registry)
    assert samples["p99_latency_s"]["iris"] == 1.0  # the bucket holding the 99th percentile
    assert samples["error_rate"]["iris"] == pytest.approx(0.01)


def test_failed_jobs_and_down_nodes_are_alert_sources(db: Database) -> None:
    from datetime import UTC, datetime, timedelta

    from aimass.monitoring.alerts import failed_jobs

    db.upgrade()
    with db.session() as session:
        assert failed_jobs(session, datetime.now(UTC) - timedelta(minutes=10)) == {"job_failed": {}}
    rule = AlertRule(name="NodeDown", metric="node_down", threshold=0.5, severity="critical")
    engine = AlertEngine([rule], [])
    (alert,) = engine.evaluate({"node_down": {"gpu-1": 1.0, "cpu-1": 0.0}}, now=10.0)
    assert alert["labels"]["subject"] == "gpu-1" and alert["labels"]["severity"] == "critical"
