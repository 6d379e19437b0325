"""The variables an attempt receives: the one place that names them.

The scheduler and the executor write a :class:`JobEnvironment` into the
attempt's environment (``to_env``; the sandbox clears everything else); the job
runtime reads it back (``JobEnvironment.from_env``). No other module spells these
names. ``AIMASS_URL``, ``AIMASS_TOKEN`` and ``AIMASS_PROJECT`` are the SDK's own
variables (``aimass.config.ClientSettings``), so ``aimass.Client()`` inside a job
talks to the server as the attempt, on the job's project.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from pydantic import BaseModel, ConfigDict

__all__ = ["VARIABLES", "JobEnvironment", "job_threads"]

#: Field → environment variable.
VARIABLES: dict[str, str] = {
    "job_id": "AIMASS_JOB_ID",
    "attempt": "AIMASS_JOB_ATTEMPT",
    "project": "AIMASS_PROJECT",
    "kind": "AIMASS_JOB_KIND",
    "entry": "AIMASS_JOB_ENTRY",
    "dataset": "AIMASS_JOB_DATASET",
    "dataset_version": "AIMASS_JOB_DATASET_VERSION",
    "scratch_dir": "AIMASS_SCRATCH_DIR",
    "checkpoint": "AIMASS_CHECKPOINT",
    "url": "AIMASS_URL",
    "token": "AIMASS_TOKEN",
    "heartbeat_s": "AIMASS_HEARTBEAT_S",
}
#: The thread-count variable the executor sets from the job's CPU share.
THREADS_VARIABLE = "OMP_NUM_THREADS"


class JobEnvironment(BaseModel):
    """Who an attempt is and where it reports: written by the executor, read by the runtime.

    Every field but the ids may be missing: an executor run without a server
    gives no URL or token, and the scheduler's part (kind, entry, dataset, the
    server link) is merged in by ``partial``.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    job_id: int
    attempt: int
    project: str = "default"
    kind: str = ""
    entry: str = ""
    dataset: str | None = None
    dataset_version: int | None = None
    scratch_dir: Path | None = None
    #: The checkpoint to resume from, as ``JobCheckpoint`` JSON ("" for none).
    checkpoint: str = ""
    url: str | None = None
    token: str | None = None
    heartbeat_s: float | None = None

    def to_env(self) -> dict[str, str]:
        """The variables to set: every field that has a value."""
        return _variables(self.model_dump(exclude_none=True))

    @staticmethod
    def partial(**values: str | int | float | None) -> dict[str, str]:
        """Variables for some fields only (the scheduler's part); unknown fields are refused."""
        unknown = set(values) - set(VARIABLES)
        if unknown:
            raise TypeError(f"not job environment fields: {', '.join(sorted(unknown))}")
        return _variables({k: v for k, v in values.items() if v is not None})

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> JobEnvironment | None:
        """The attempt this environment describes (``os.environ`` by default); None outside one."""
        source = os.environ if env is None else env
        if VARIABLES["job_id"] not in source:
            return None
        values = {field: source[name] for field, name in VARIABLES.items() if source.get(name)}
        return cls.model_validate(values)


def _variables(values: Mapping[str, object]) -> dict[str, str]:
    return {VARIABLES[field]: str(value) for field, value in values.items()}


def job_threads(env: Mapping[str, str] | None = None) -> int:
    """The CPU share the executor gave this job (``OMP_NUM_THREADS``), at least 1."""
    value = (os.environ if env is None else env).get(THREADS_VARIABLE, "")
    return int(value) if value.isdigit() and int(value) > 0 else 1
