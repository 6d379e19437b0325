"""An attempt's identity is one typed model: written by the executor, read by the runtime."""

from __future__ import annotations

from pathlib import Path

import pytest

from aimass.executors.base import AttemptSpec
from aimass.executors.local import THREAD_VARS, child_spec
from aimass.job_environment import VARIABLES, JobEnvironment
from aimass.jobs.entities import JobCheckpoint, Resources
from aimass.runtime import JobContext, NotInAJob


def test_what_the_executor_writes_the_runtime_reads_back(tmp_path: Path) -> None:
    server_part = JobEnvironment.partial(
        entry="noop", kind="train", dataset="iris", dataset_version=2, url="http://x", token="t"
    )
    attempt = AttemptSpec(
        job_id=7,
        attempt=3,
        project="team",
        entry="noop",
        params={},
        resources=Resources(cpu=2),
        scratch_dir=tmp_path,
        env=server_part,
    )

    env = child_spec(attempt, "aimass.jobs.builtin.noop:run", None, [], None)["env"]
    ctx = JobContext(env)

    assert (ctx.job_id, ctx.attempt, ctx.project) == (7, 3, "team")
    assert (ctx.kind, ctx.entry, ctx.dataset, ctx.dataset_version) == ("train", "noop", "iris", 2)
    assert ctx.scratch == tmp_path
    assert env["OMP_NUM_THREADS"] == "2"
    assert set(env) <= set(VARIABLES.values()) | set(THREAD_VARS)


def test_the_project_travels_under_one_name(tmp_path: Path) -> None:
    job = JobEnvironment(job_id=1, attempt=1, project="p", scratch_dir=tmp_path)

    carrying = [name for name, value in job.to_env().items() if value == "p"]

    assert carrying == [VARIABLES["project"]]


def test_a_checkpoint_round_trips(tmp_path: Path) -> None:
    checkpoint = JobCheckpoint.model_validate(
        {
            "attempt": 1,
            "step": 4,
            "artifact_key": "k",
            "sha256": "0" * 64,
            "at": "2026-01-01T00:00Z",
        }
    )
    job = JobEnvironment(job_id=1, attempt=2, checkpoint=checkpoint.model_dump_json())

    assert JobEnvironment.from_env(job.to_env()) == job


def test_outside_a_job_there_is_no_environment() -> None:
    assert JobEnvironment.from_env({"AIMASS_URL": "http://x"}) is None
    with pytest.raises(NotInAJob):
        JobContext({})


def test_a_field_that_is_not_part_of_the_environment_is_refused() -> None:
    with pytest.raises(TypeError, match="not job environment fields: secret"):
        JobEnvironment.partial(secret="x")
