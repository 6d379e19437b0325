"""Schedules through the SDK: cron rules that start a job or a pipeline run."""

from __future__ import annotations

import builtins
from collections.abc import Mapping
from urllib.parse import quote

from pydantic import JsonValue

from aimass.client._http import HttpSession
from aimass.client.deployments import _spec
from aimass.entities.jobs import JobCreate, JobKind
from aimass.entities.schedules import Schedule, ScheduleCreate, ScheduleUpdate
from aimass.errors import InvalidInput

Template = JobCreate | Mapping[str, object]
"""A job template: a :class:`JobCreate` or its fields as a mapping."""


def _template(job: Template) -> JobCreate:
    return job if isinstance(job, JobCreate) else _spec(JobCreate, **job)


class Schedules:
    """Cron schedules in the client's project (``client.schedules``)."""

    def __init__(self, http: HttpSession) -> None:
        self._http = http

    def create(
        self,
        name: str,
        cron: str,
        *,
        entry: str | None = None,
        kind: JobKind = "train",
        params: Mapping[str, JsonValue] | None = None,
        dataset: str | None = None,
        dataset_version: int | None = None,
        job: Template | None = None,
        pipeline: str | None = None,
        timezone: str = "UTC",
        enabled: bool = True,
    ) -> Schedule:
        """Start a job of ``entry`` (or the full ``job`` template), or a ``pipeline`` run, on cron.

        ``cron`` has 5 fields (``"*/5 * * * *"``) read in ``timezone``. Give
        exactly one of ``entry``, ``job`` or ``pipeline``; the template is
        checked by the server now, so a bad one is refused before it is stored.
        """
        if sum(x is not None for x in (entry, job, pipeline)) != 1:
            raise InvalidInput("give exactly one of entry, job or pipeline")
        template: JobCreate | None = None
        if entry is not None:
            template = _spec(
                JobCreate,
                kind=kind,
                entry=entry,
                params=dict(params or {}),
                dataset=dataset,
                dataset_version=dataset_version,
            )
        elif job is not None:
            template = _template(job)
        spec = _spec(
            ScheduleCreate,
            name=name,
            cron=cron,
            timezone=timezone,
            job=template,
            pipeline=pipeline,
            enabled=enabled,
        )
        answer = self._http.request(
            "POST",
            "/api/v1/schedules",
            params=self._http.scoped(),
            json_body=spec.model_dump(mode="json", exclude_none=True),
        )
        return Schedule.model_validate(answer.json())

    def list(self) -> builtins.list[Schedule]:
        """Every schedule in the project, by name."""
        items = self._http.get_json("/api/v1/schedules", self._http.scoped())
        return [Schedule.model_validate(s) for s in items]

    def get(self, name: str) -> Schedule:
        """One schedule: its rule, template, next and last firing, and the last error."""
        return Schedule.model_validate(self._http.get_json(self._path(name), self._http.scoped()))

    def update(
        self,
        name: str,
        *,
        cron: str | None = None,
        timezone: str | None = None,
        enabled: bool | None = None,
        job: Template | None = None,
        pipeline: str | None = None,
    ) -> Schedule:
        """Change a schedule; unset arguments stay as they are."""
        spec = _spec(
            ScheduleUpdate,
            cron=cron,
            timezone=timezone,
            enabled=enabled,
            job=_template(job) if job is not None else None,
            pipeline=pipeline,
        )
        answer = self._http.request(
            "PATCH",
            self._path(name),
            params=self._http.scoped(),
            json_body=spec.model_dump(mode="json", exclude_none=True),
        )
        return Schedule.model_validate(answer.json())

    def enable(self, name: str) -> Schedule:
        """Fire again from the next matching time (missed times are not made up)."""
        return self.update(name, enabled=True)

    def disable(self, name: str) -> Schedule:
        """Stop firing until enabled again."""
        return self.update(name, enabled=False)

    def delete(self, name: str) -> None:
        """Delete a schedule; what it started runs on."""
        self._http.request("DELETE", self._path(name), params=self._http.scoped())

    @staticmethod
    def _path(name: str) -> str:
        return f"/api/v1/schedules/{quote(name, safe='')}"
