"""Schedule entities and the requests that create and change them."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field, model_validator

from aimass.entities.jobs import JobCreate


class ScheduleCreate(BaseModel):
    """A cron rule (5 fields, in ``timezone``) that starts ``job`` or a run of ``pipeline``."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=128)
    cron: str = Field(min_length=1, max_length=128, description="5 fields: m h dom mon dow")
    timezone: str = Field(default="UTC", min_length=1, max_length=64)
    job: JobCreate | None = None
    pipeline: str | None = Field(default=None, min_length=1, max_length=128)
    enabled: bool = True

    @model_validator(mode="after")
    def _one_template(self) -> ScheduleCreate:
        if (self.job is None) == (self.pipeline is None):
            raise ValueError("a schedule starts exactly one of 'job' or 'pipeline'")
        return self


class ScheduleUpdate(BaseModel):
    """Changes to a schedule; unset fields stay as they are."""

    model_config = ConfigDict(extra="forbid")

    cron: str | None = Field(default=None, min_length=1, max_length=128)
    timezone: str | None = Field(default=None, min_length=1, max_length=64)
    job: JobCreate | None = None
    pipeline: str | None = Field(default=None, min_length=1, max_length=128)
    enabled: bool | None = None

    @model_validator(mode="after")
    def _one_template(self) -> ScheduleUpdate:
        if self.job is not None and self.pipeline is not None:
            raise ValueError("give at most one of 'job' or 'pipeline'")
        return self


class Schedule(BaseModel):
    """A schedule and when it fires next.

    ``next_run_at`` is None while disabled. A window missed while no server
    ran fires once when one comes back, not once per missed tick. ``last_error``
    says why the last firing started nothing (a template that no longer fits).
    """

    id: int
    project: str
    name: str
    cron: str
    timezone: str
    job: JobCreate | None
    pipeline: str | None
    enabled: bool
    next_run_at: datetime | None
    last_run_at: datetime | None
    last_job_id: int | None
    last_pipeline_run_id: int | None
    last_error: str | None
    created_at: datetime
    updated_at: datetime
