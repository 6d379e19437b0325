"""Job entities and the request that submits one."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, JsonValue, field_validator

JobKind = Literal["train", "evaluate", "batch_predict", "tune", "script"]
JobState = Literal["queued", "running", "succeeded", "failed", "cancelled"]
Outcome = Literal["succeeded", "failed"]

#: States a job never leaves on its own (``retry_job`` puts one back in the queue).
TERMINAL_STATES: frozenset[str] = frozenset({"succeeded", "failed", "cancelled"})

_CUSTOM_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:/-]{0,63}")
_RAY_BUILTIN = frozenset({"CPU", "GPU", "TPU", "memory", "object_store_memory"})


class Resources(BaseModel):
    """What one attempt of a job holds while it runs."""

    model_config = ConfigDict(extra="forbid")

    cpu: float = Field(default=1.0, gt=0, le=1024)
    gpu: int = Field(default=0, ge=0, le=64)
    memory_mb: int | None = Field(default=None, ge=1)
    #: Custom resources by name, as a Ray node offers them (``ray start --resources
    #: '{"node-b": 1}'``): how a job asks for a labelled node. Only the Ray executor has them.
    custom: dict[str, float] = Field(default_factory=dict, max_length=16)

    @field_validator("custom")
    @classmethod
    def _custom_names(cls, value: dict[str, float]) -> dict[str, float]:
        for name, amount in value.items():
            if not _CUSTOM_NAME.fullmatch(name) or name in _RAY_BUILTIN:
                raise ValueError(
                    f"custom resource {name!r}: a name of letters, digits and _ . : / - "
                    "(up to 64), not one of Ray's own (CPU, GPU, memory: use cpu, gpu, memory_mb)"
                )
            if not 0 <= amount <= 1_000_000:
                raise ValueError(f"custom resource {name!r}: the amount must be 0 to 1000000")
            if amount > 1 and amount != int(amount):
                raise ValueError(
                    f"custom resource {name!r}: an amount above 1 must be whole (Ray's rule)"
                )
        return value


class JobCreate(BaseModel):
    """A request to run something: a model-library entry by name, or ``script``."""

    model_config = ConfigDict(extra="forbid")

    kind: JobKind
    entry: str = Field(min_length=1, max_length=256)
    params: dict[str, JsonValue] = Field(default_factory=dict)
    dataset: str | None = Field(default=None, min_length=1, max_length=256)
    dataset_version: int | None = Field(default=None, ge=1)
    resources: Resources = Field(default_factory=Resources)
    priority: int = Field(default=0, ge=-1000, le=1000, description="higher runs first")
    max_retries: int = Field(default=0, ge=0, le=10)
    timeout_s: float | None = Field(default=None, gt=0)
    parent_id: int | None = Field(default=None, ge=1)


class StoredSource(BaseModel):
    """A script job's uploaded code in the artifact store."""

    key: str
    sha256: str
    name: str


class Job(BaseModel):
    """A job and where its state machine stands.

    ``attempt`` is the current attempt (1-based; 0 while never started). Every
    write from a running attempt carries that number and is refused once it is
    no longer current. ``reason`` says, in words, why a job failed or why it is
    still waiting.
    """

    id: int
    project: str
    kind: JobKind
    entry: str
    params: dict[str, JsonValue]
    dataset: str | None
    dataset_version: int | None
    resources: Resources
    priority: int
    state: JobState
    attempt: int
    retries_used: int
    max_retries: int
    infra_requeues: int
    timeout_s: float | None
    reason: str | None
    node: str | None
    parent_id: int | None
    cancel_requested: bool
    created_at: datetime
    queued_at: datetime | None
    started_at: datetime | None
    finished_at: datetime | None
    next_attempt_at: datetime | None
    lease_expires_at: datetime | None
    outputs: dict[str, JsonValue]
    source: str | None = Field(default=None, description="file name of a script job's code")


class JobEvent(BaseModel):
    """One step of a job's state history."""

    at: datetime
    state: JobState
    attempt: int
    reason: str | None


class JobMetric(BaseModel):
    """A value a job logged at a step of one attempt."""

    attempt: int
    name: str
    step: int
    value: float
    at: datetime


class JobCheckpoint(BaseModel):
    """A checkpoint an attempt saved to the artifact store; the next attempt resumes from it."""

    attempt: int
    step: int
    artifact_key: str
    sha256: str
    at: datetime


class JobArtifact(BaseModel):
    """A file an attempt of a job kept (``runtime.log_artifact``); ``at`` is when, ISO 8601."""

    name: str
    attempt: int
    size: int
    sha256: str
    at: str | None = None


class MetricsRecorded(BaseModel):
    """The answer to an attempt's metric batch: how many points were stored."""

    recorded: int


class LogsAppended(BaseModel):
    """The answer to shipped log bytes: how many were appended."""

    appended: int


class MetricPoint(BaseModel):
    """One metric value at one step."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=256)
    value: float = Field(allow_inf_nan=False)
    step: int = Field(default=0, ge=0)


class MetricBatch(BaseModel):
    """Metrics an attempt logs in one call."""

    model_config = ConfigDict(extra="forbid")

    metrics: list[MetricPoint] = Field(min_length=1, max_length=10_000)


class AttemptLease(BaseModel):
    """The answer to an attempt's heartbeat: its renewed lease and whether to stop."""

    lease_expires_at: datetime | None
    cancel_requested: bool


class JobOutputs(BaseModel):
    """The answer to an attempt's outputs: the job's outputs after the merge."""

    outputs: dict[str, JsonValue]
