"""The job queue's Prometheus gauges, read from a real database on each backend."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from aimass.jobs import service
from aimass.jobs.entities import JobCreate
from aimass.monitoring.job_metrics import JobQueueCollector
from aimass.store.db import Database


def _submit(db: Database) -> int:
    spec = JobCreate.model_validate({"kind": "script", "entry": "script"})
    with db.session() as s:
        return service.submit_job(s, "default", spec, {"script": None}).id


def _samples(registry: CollectorRegistry) -> dict[tuple[str, tuple[str, ...]], float]:
    text = generate_latest(registry).decode()
    return {
        (s.name, tuple(sorted(s.labels.values()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def test_jobs_by_state_and_the_oldest_queued_wait(db: Database) -> None:
    registry = CollectorRegistry()
    collector = JobQueueCollector(db, ttl_s=0.0)
    registry.register(collector)
    assert _samples(registry) == {}  # no jobs: no series

    first, _, _ = _submit(db), _submit(db), _submit(db)
    with db.session() as s:
        service.start_attempt(s, first, "node-a", 30.0)
    samples = _samples(registry)

    assert samples[("aimass_jobs", ("default", "queued"))] == 2
    assert samples[("aimass_jobs", ("default", "running"))] == 1
    assert samples[("aimass_jobs", ("default", "failed"))] == 0
    assert 0 <= samples[("aimass_jobs_oldest_queued_seconds", ("default",))] < 60


def test_figures_are_kept_for_the_ttl(db: Database) -> None:
    collector = JobQueueCollector(db, ttl_s=3600.0)
    registry = CollectorRegistry()
    registry.register(collector)
    _submit(db)
    assert _samples(registry)[("aimass_jobs", ("default", "queued"))] == 1
    _submit(db)  # within the TTL the last figures are served: one query per window
    assert _samples(registry)[("aimass_jobs", ("default", "queued"))] == 1
