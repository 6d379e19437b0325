"""Placement: never over-commit, priority then FIFO, project limits, readable reasons."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from pydantic import ValidationError

from aimass.jobs.entities import Job, Resources
from aimass.scheduler.placement import NodeCapacity, place

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def _job(
    job_id: int,
    cpu: float = 1,
    gpu: int = 0,
    memory_mb: int | None = None,
    priority: int = 0,
    project: str = "default",
    next_attempt_at: datetime | None = None,
    custom: dict[str, float] | None = None,
) -> Job:
    return Job.model_validate(
        {
            "id": job_id,
            "project": project,
            "kind": "script",
            "entry": "script",
            "params": {},
            "dataset": None,
            "dataset_version": None,
            "resources": Resources(cpu=cpu, gpu=gpu, memory_mb=memory_mb, custom=custom or {}),
            "priority": priority,
            "state": "queued",
            "attempt": 0,
            "retries_used": 0,
            "max_retries": 0,
            "infra_requeues": 0,
            "timeout_s": None,
            "reason": None,
            "node": None,
            "parent_id": None,
            "cancel_requested": False,
            "created_at": T0 + timedelta(seconds=job_id),
            "queued_at": None,
            "started_at": None,
            "finished_at": None,
            "next_attempt_at": next_attempt_at,
            "lease_expires_at": None,
            "outputs": {},
        }
    )


def _ids(jobs: list[Job]) -> list[int]:
    return [j.id for j in jobs]


def test_two_cpu_slots_start_two_of_three_one_cpu_jobs() -> None:
    plan = place(NodeCapacity(cpu=2), [], [_job(1), _job(2), _job(3)], T0)
    assert _ids(plan.start) == [1, 2]
    assert plan.waiting[3] == "waiting: needs 1 CPU; 0 of 2 CPUs free"
    # with one of them running, one more fits
    plan = place(NodeCapacity(cpu=2), [_job(1)], [_job(2), _job(3)], T0)
    assert _ids(plan.start) == [2] and 3 in plan.waiting


def test_priority_first_then_first_come_first_served() -> None:
    queue = [_job(1), _job(2, priority=5), _job(3, priority=5), _job(4, priority=-1)]
    plan = place(NodeCapacity(cpu=2), [], queue, T0)
    assert _ids(plan.start) == [2, 3]
    assert set(plan.waiting) == {1, 4}


def test_a_blocked_job_is_not_overtaken_by_lower_priority_work() -> None:
    queue = [_job(1, cpu=2, priority=1), _job(2, cpu=1)]
    plan = place(NodeCapacity(cpu=2), [_job(9)], queue, T0)
    assert plan.start == []
    assert plan.waiting[1] == "waiting: needs 2 CPUs; 1 of 2 CPUs free"
    assert plan.waiting[2] == "waiting: queued behind earlier or higher-priority jobs"


def test_per_project_limit() -> None:
    queue = [_job(1, project="a"), _job(2, project="a"), _job(3, project="b")]
    plan = place(NodeCapacity(cpu=8), [_job(9, project="a")], queue, T0, {"a": 2})
    assert _ids(plan.start) == [1, 3]
    assert plan.waiting[2] == "waiting: project 'a' already runs 2 jobs (its limit is 2)"
    plan = place(NodeCapacity(cpu=8), [], queue, T0, default_project_limit=1)
    assert _ids(plan.start) == [1, 3]


def test_a_gpu_job_on_a_node_without_gpu_waits_with_a_reason_and_blocks_nobody() -> None:
    plan = place(NodeCapacity(cpu=2), [], [_job(1, gpu=1), _job(2)], T0)
    assert _ids(plan.start) == [2]
    assert plan.waiting[1] == "waiting: needs 1 GPU; no node has one"
    plan = place(NodeCapacity(cpu=2, gpu=1), [], [_job(1, gpu=2)], T0)
    assert plan.waiting[1] == "waiting: needs 2 GPUs; the largest node has 1"
    plan = place(NodeCapacity(cpu=4, gpu=1), [_job(5, gpu=1)], [_job(1, gpu=1), _job(2)], T0)
    assert _ids(plan.start) == [] and plan.waiting[1].startswith("waiting: needs 1 CPU, 1 GPU")


def test_memory_is_never_over_committed() -> None:
    capacity = NodeCapacity(cpu=8, memory_mb=1000)
    queue = [_job(1, memory_mb=600), _job(2, memory_mb=600), _job(3, memory_mb=5000)]
    plan = place(capacity, [], queue, T0)
    assert _ids(plan.start) == [1]
    assert "600 MB of memory" in plan.waiting[2]
    assert plan.waiting[3] == "waiting: needs 5000 MB of memory; the largest node has 1000 MB"


def test_fractional_cpus_and_backoff() -> None:
    queue = [
        _job(1, cpu=0.5),
        _job(2, cpu=0.5),
        _job(3, cpu=0.5, next_attempt_at=T0 + timedelta(seconds=9)),
    ]
    plan = place(NodeCapacity(cpu=1), [], queue, T0)
    assert _ids(plan.start) == [1, 2]
    assert plan.waiting[3] == "waiting: retry backoff until 00:00:09 UTC"
    plan = place(NodeCapacity(cpu=8), [], queue[2:], T0 + timedelta(seconds=10))
    assert _ids(plan.start) == [3]


def test_custom_resources_wait_on_the_local_executor_and_go_to_ray_otherwise() -> None:
    labelled = _job(1, custom={"node-b": 1})
    local = place(NodeCapacity(cpu=2, custom={}), [], [labelled, _job(2)], T0)
    assert _ids(local.start) == [2]  # it holds nobody back
    assert "custom resource 'node-b'" in local.waiting[1]
    assert "--executor ray" in local.waiting[1]
    ray = place(NodeCapacity(cpu=2), [], [labelled], T0)  # Ray places by its labels itself
    assert _ids(ray.start) == [1]


def test_custom_resource_names_and_amounts_are_checked() -> None:
    assert Resources(custom={"node-b": 1, "gpu-box": 0.5, "zone:eu/1": 4}).custom["zone:eu/1"] == 4
    for bad in ({"CPU": 1}, {"memory": 1}, {"": 1}, {"a b": 1}, {"x": -1}, {"x": 1.5}):
        with pytest.raises(ValidationError):
            Resources(custom=bad)
