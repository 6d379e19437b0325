"""Pipelines through the SDK: apply a DAG of steps, start runs and watch each step."""

from __future__ import annotations

import builtins
import time
from collections import deque
from collections.abc import Iterator, Mapping
from urllib.parse import quote

from aimass.client._http import HttpSession
from aimass.client.deployments import _spec
from aimass.entities.pipelines import (
    TERMINAL_RUN_STATES,
    Pipeline,
    PipelineCreate,
    PipelineRun,
)
from aimass.errors import AimassError


class PipelineTimeout(AimassError, TimeoutError):
    """A pipeline run did not finish within the time given to wait for it."""

    code = "pipeline_timeout"
    status = 0


def _fingerprint(run: PipelineRun) -> tuple[object, ...]:
    return (run.state, tuple((s.state, s.job_id, s.reason) for s in run.steps))


class Pipelines:
    """Pipelines and their runs in the client's project (``client.pipelines``)."""

    def __init__(self, http: HttpSession) -> None:
        self._http = http

    def apply(self, spec: PipelineCreate | Mapping[str, object]) -> Pipeline:
        """Create the pipeline, or replace the steps of the one of that name (a new revision).

        ``spec`` is ``{"name": ..., "steps": [...]}``; the server refuses a spec
        that is not a DAG, names unknown steps or entries, or reads a step's
        outputs before it runs.
        """
        body = spec if isinstance(spec, PipelineCreate) else _spec(PipelineCreate, **spec)
        answer = self._http.request(
            "POST",
            "/api/v1/pipelines",
            params=self._http.scoped(),
            json_body=body.model_dump(mode="json", exclude_none=True),
        )
        return Pipeline.model_validate(answer.json())

    def list(self) -> builtins.list[Pipeline]:
        """Every pipeline in the project, by name."""
        items = self._http.get_json("/api/v1/pipelines", self._http.scoped())
        return [Pipeline.model_validate(p) for p in items]

    def get(self, name: str) -> Pipeline:
        """One pipeline with its steps in running order."""
        return Pipeline.model_validate(self._http.get_json(self._path(name), self._http.scoped()))

    def delete(self, name: str) -> None:
        """Delete a pipeline and its finished runs (Conflict while one is under way)."""
        self._http.request("DELETE", self._path(name), params=self._http.scoped())

    def run(self, name: str) -> PipelineRun:
        """Start a run of the pipeline; see :meth:`wait_run` and :meth:`watch_run`."""
        answer = self._http.request("POST", f"{self._path(name)}/runs", params=self._http.scoped())
        return PipelineRun.model_validate(answer.json())

    def runs(self, name: str, limit: int = 50) -> builtins.list[PipelineRun]:
        """A pipeline's latest runs, newest first."""
        items = self._http.get_json(f"{self._path(name)}/runs", self._http.scoped({"limit": limit}))
        return [PipelineRun.model_validate(r) for r in items]

    def get_run(self, run_id: int) -> PipelineRun:
        """One run with each step's state, job, outputs and reason."""
        data = self._http.get_json(_run_path(run_id), self._http.scoped())
        return PipelineRun.model_validate(data)

    def cancel_run(self, run_id: int) -> PipelineRun:
        """Cancel a run and the jobs of its running steps."""
        answer = self._http.request(
            "POST", f"{_run_path(run_id)}/cancel", params=self._http.scoped()
        )
        return PipelineRun.model_validate(answer.json())

    def watch_run(
        self, run_id: int, timeout: float = 3600.0, poll: float = 0.25
    ) -> Iterator[PipelineRun]:
        """Yield the run now and after each change of a step, until it ends.

        Raises :class:`PipelineTimeout` when ``timeout`` seconds pass first.
        """
        deadline = time.monotonic() + timeout
        seen: tuple[object, ...] | None = None
        while True:
            run = self.get_run(run_id)
            if _fingerprint(run) != seen:
                seen = _fingerprint(run)
                yield run
            if run.state in TERMINAL_RUN_STATES:
                return
            if time.monotonic() >= deadline:
                raise PipelineTimeout(
                    f"pipeline run {run_id} is still {run.state} after {timeout:g} s"
                )
            time.sleep(poll)

    def wait_run(self, run_id: int, timeout: float = 3600.0, poll: float = 0.25) -> PipelineRun:
        """Wait until the run ends (succeeded, failed or cancelled) and return it."""
        return deque(self.watch_run(run_id, timeout, poll), maxlen=1)[0]

    @staticmethod
    def _path(name: str) -> str:
        return f"/api/v1/pipelines/{quote(name, safe='')}"


def _run_path(run_id: int) -> str:
    return f"/api/v1/pipelines/runs/{int(run_id)}"
