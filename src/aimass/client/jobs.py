"""Jobs through the SDK: submit entries or your own code, follow logs, wait, cancel, retry."""

from __future__ import annotations

import builtins
import json
import tarfile
import tempfile
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, cast

import httpx
from pydantic import JsonValue

from aimass.client._http import HttpSession, Progress, _ProgressReader
from aimass.client.deployments import _spec
from aimass.entities.catalog import EntryInfo
from aimass.entities.jobs import (
    TERMINAL_STATES,
    Job,
    JobArtifact,
    JobCheckpoint,
    JobCreate,
    JobEvent,
    JobKind,
    JobMetric,
    JobState,
    Resources,
)
from aimass.errors import AimassError, InvalidInput

#: What ``submit_script`` sends as is; a folder is packed into a ``.tar.gz`` first.
SOURCE_SUFFIXES = (".py", ".zip", ".tar.gz", ".tgz")
#: Folders left out when a source folder is packed.
_SKIPPED = frozenset({"__pycache__", ".git", ".venv", ".mypy_cache", ".pytest_cache"})


class JobTimeout(AimassError, TimeoutError):
    """A job did not finish within the time given to wait for it."""

    code = "job_timeout"
    status = 0


@dataclass(frozen=True)
class LogLine:
    """One line of a job's log (without its newline)."""

    line: str


@dataclass(frozen=True)
class AttemptStarted:
    """A new attempt's log begins; the lines after it are that attempt's."""

    attempt: int


@dataclass(frozen=True)
class LogEnd:
    """The job reached a final state; the stream is over."""

    job: Job


LogEvent = LogLine | AttemptStarted | LogEnd
"""What :meth:`Jobs.follow_logs` yields."""


def pack_source(folder: Path, dest: Path) -> Path:
    """Pack a source folder into ``dest`` (.tar.gz), paths relative to the folder.

    Caches, ``.git`` and virtual environments are left out, and so is anything
    that is not a plain file or folder (links could point outside the code).
    """

    def keep(info: tarfile.TarInfo) -> tarfile.TarInfo | None:
        parts = Path(info.name).parts
        if any(p in _SKIPPED for p in parts) or info.name.endswith(".pyc"):
            return None
        if not (info.isfile() or info.isdir()):
            return None
        info.uid = info.gid = 0
        info.uname = info.gname = ""
        return info

    with tarfile.open(dest, "w:gz") as archive:
        for child in sorted(folder.iterdir()):
            archive.add(child, arcname=child.name, filter=keep)
    return dest


class Jobs:
    """Jobs in the client's project (``client.jobs``).

    A job runs an entry from the server's catalogue (:meth:`entries`) or your
    own code (:meth:`submit_script`). It is queued at once; :meth:`wait` or
    :meth:`follow_logs` tell you when it finished and how.
    """

    def __init__(self, http: HttpSession) -> None:
        self._http = http

    def submit(
        self,
        entry: str,
        *,
        kind: JobKind = "train",
        params: Mapping[str, JsonValue] | None = None,
        dataset: str | None = None,
        dataset_version: int | None = None,
        cpu: float = 1.0,
        gpu: int = 0,
        memory_mb: int | None = None,
        priority: int = 0,
        max_retries: int = 0,
        timeout_s: float | None = None,
        parent_id: int | None = None,
    ) -> Job:
        """Queue a run of a catalogue entry; its params are checked before it is queued."""
        spec = _job_spec(
            entry=entry, kind=kind, params=params, dataset=dataset,
            dataset_version=dataset_version, cpu=cpu, gpu=gpu, memory_mb=memory_mb,
            priority=priority, max_retries=max_retries, timeout_s=timeout_s, parent_id=parent_id,
        )  # fmt: skip
        answer = self._http.request(
            "POST", "/api/v1/jobs", params=self._http.scoped(), json_body=spec
        )
        return Job.model_validate(answer.json())

    def submit_script(
        self,
        path: str | Path,
        entry: str,
        *,
        kind: JobKind = "script",
        params: Mapping[str, JsonValue] | None = None,
        dataset: str | None = None,
        dataset_version: int | None = None,
        cpu: float = 1.0,
        gpu: int = 0,
        memory_mb: int | None = None,
        priority: int = 0,
        max_retries: int = 0,
        timeout_s: float | None = None,
        parent_id: int | None = None,
        progress: Progress | None = None,
    ) -> Job:
        """Upload your code and run ``entry`` in it (``train.py:main`` or ``pkg.module:fn``).

        ``path`` is a ``.py`` file, a ``.zip`` or ``.tar.gz`` archive, or a folder,
        which is packed into a ``.tar.gz`` first. The function gets the params
        dict and may return a dict of outputs.
        """
        spec = _job_spec(
            entry=entry, kind=kind, params=params, dataset=dataset,
            dataset_version=dataset_version, cpu=cpu, gpu=gpu, memory_mb=memory_mb,
            priority=priority, max_retries=max_retries, timeout_s=timeout_s, parent_id=parent_id,
        )  # fmt: skip
        source = Path(path)
        if source.is_dir():
            with tempfile.TemporaryDirectory(prefix="aimass-source-") as tmp:
                name = source.resolve().name or "source"
                packed = pack_source(source, Path(tmp) / f"{name}.tar.gz")
                return self._post_source(spec, packed, progress)
        if not source.name.endswith(SOURCE_SUFFIXES):
            raise InvalidInput(
                f"source: {source.name!r} is not a .py file, a .zip or .tar.gz archive, or a folder"
            )
        return self._post_source(spec, source, progress)

    def list(
        self,
        state: JobState | None = None,
        kind: JobKind | None = None,
        parent_id: int | None = None,
        limit: int = 100,
    ) -> builtins.list[Job]:
        """The project's latest jobs, newest first, optionally of one state, kind or parent."""
        params = self._http.scoped(
            {"state": state, "kind": kind, "parent_id": parent_id, "limit": limit}
        )
        return [Job.model_validate(j) for j in self._http.get_json("/api/v1/jobs", params)]

    def get(self, id: int) -> Job:
        """One job by id."""
        return Job.model_validate(self._http.get_json(_path(id), self._http.scoped()))

    def events(self, id: int) -> builtins.list[JobEvent]:
        """The job's state history, oldest first."""
        items = self._http.get_json(f"{_path(id)}/events", self._http.scoped())
        return [JobEvent.model_validate(e) for e in items]

    def metrics(self, id: int, name: str | None = None) -> builtins.list[JobMetric]:
        """Values the job logged, of every attempt, optionally of one metric."""
        items = self._http.get_json(f"{_path(id)}/metrics", self._http.scoped({"name": name}))
        return [JobMetric.model_validate(m) for m in items]

    def checkpoints(self, id: int) -> builtins.list[JobCheckpoint]:
        """Checkpoints the job's attempts saved."""
        items = self._http.get_json(f"{_path(id)}/checkpoints", self._http.scoped())
        return [JobCheckpoint.model_validate(c) for c in items]

    def cancel(self, id: int) -> Job:
        """Cancel a queued or running job; :class:`aimass.errors.Conflict` if it ended otherwise.

        A queued job is cancelled at once, a running one within seconds; cancelling
        a cancelled job changes nothing.
        """
        answer = self._http.request("POST", f"{_path(id)}/cancel", params=self._http.scoped())
        return Job.model_validate(answer.json())

    def retry(self, id: int) -> Job:
        """Queue a failed or cancelled job again, as a new attempt."""
        answer = self._http.request("POST", f"{_path(id)}/retry", params=self._http.scoped())
        return Job.model_validate(answer.json())

    def entries(self) -> builtins.list[dict[str, JsonValue]]:
        """What can run by name: ``name``, ``kinds``, ``description``, ``params_schema``..."""
        items: builtins.list[dict[str, JsonValue]] = self._http.get_json("/api/v1/jobs/entries")
        # Plain dicts, as ever; each is checked against the wire model the server answers with.
        for item in items:
            EntryInfo.model_validate(item)
        return items

    def artifacts(self, id: int) -> builtins.list[JobArtifact]:
        """Files the job's attempts saved."""
        items = self._http.get_json(f"{_path(id)}/artifacts", self._http.scoped())
        return [JobArtifact.model_validate(a) for a in items]

    def download_artifact(
        self, id: int, name: str, dest: str | Path, progress: Progress | None = None
    ) -> Path:
        """Stream one artifact to ``dest`` (a file, or a folder to keep its name)."""
        return self._http.download(
            f"{_path(id)}/artifacts/{_seg(name)}",
            dest,
            default_name=lambda: Path(name).name,
            params=self._http.scoped(),
            progress=progress,
        )

    def logs(self, id: int, attempt: int | None = None) -> str:
        """One attempt's whole log so far (by default the latest attempt's)."""
        params = self._http.scoped({"attempt": attempt})
        return self._http.request("GET", f"{_path(id)}/logs", params=params).text

    def follow_logs(self, id: int) -> Iterator[LogEvent]:
        """Stream the job's log live: lines, a marker per attempt, then :class:`LogEnd`.

        Ends after :class:`LogEnd`, which carries the job in its final state.
        """
        from httpx_sse import SSEError, connect_sse

        http = self._http
        params = http.scoped({"follow": "true"})
        # No read timeout: a quiet job may print nothing for a long while.
        timeout = httpx.Timeout(http.timeout, read=None)
        with (
            http._errors(),
            connect_sse(
                http._client, "GET", f"{_path(id)}/logs", params=params, timeout=timeout
            ) as source,
        ):
            http._check(source.response)
            try:
                for event in source.iter_sse():
                    if event.event == "log":
                        yield LogLine(event.data)
                    elif event.event == "attempt":
                        yield AttemptStarted(int(event.json()["attempt"]))
                    elif event.event == "end":
                        yield LogEnd(Job.model_validate_json(event.data))
                        return
            except SSEError as exc:
                raise AimassError(f"job {id}: the server did not stream logs ({exc})") from exc
        job = self.get(id)
        if job.state not in TERMINAL_STATES:
            raise AimassError(f"job {id}: the log stream closed while the job was {job.state}")
        yield LogEnd(job)

    def wait(self, id: int, timeout: float = 60.0, poll: float = 0.05) -> Job:
        """Return the job once it succeeded, failed or was cancelled.

        Polls every ``poll`` seconds at first, slowing to once a second; raises
        :class:`JobTimeout` when ``timeout`` seconds pass first.
        """
        deadline = time.monotonic() + timeout
        interval = poll
        while True:
            job = self.get(id)
            if job.state in TERMINAL_STATES:
                return job
            left = deadline - time.monotonic()
            if left <= 0:
                raise JobTimeout(f"job {id} is still {job.state} after {timeout:g} s")
            time.sleep(min(interval, left))
            interval = min(interval * 1.5, max(poll, 1.0))

    def _post_source(self, spec: dict[str, object], file: Path, progress: Progress | None) -> Job:
        """POST the spec and the code (streamed) as multipart to the script route."""
        with file.open("rb") as handle:
            reader = _ProgressReader(handle, file.stat().st_size, progress)
            answer = self._http.send(
                "POST",
                "/api/v1/jobs/script",
                params=self._http.scoped(),
                files={"source": (file.name, cast(IO[bytes], reader), "application/octet-stream")},
                data={"spec": json.dumps(spec)},
                timeout=self._http._transfer_timeout,
            )
        return Job.model_validate(answer.json())


def _job_spec(
    *,
    entry: str,
    kind: JobKind,
    params: Mapping[str, JsonValue] | None,
    dataset: str | None,
    dataset_version: int | None,
    cpu: float,
    gpu: int,
    memory_mb: int | None,
    priority: int,
    max_retries: int,
    timeout_s: float | None,
    parent_id: int | None,
) -> dict[str, object]:
    """A JobCreate body, validated here so a bad argument fails before anything is sent."""
    spec = _spec(
        JobCreate,
        entry=entry,
        kind=kind,
        params=dict(params or {}),
        dataset=dataset,
        dataset_version=dataset_version,
        resources=_spec(Resources, cpu=cpu, gpu=gpu, memory_mb=memory_mb),
        priority=priority,
        max_retries=max_retries,
        timeout_s=timeout_s,
        parent_id=parent_id,
    )
    body: dict[str, object] = spec.model_dump(mode="json", exclude_none=True)
    return body


def _path(id: int) -> str:
    return f"/api/v1/jobs/{int(id)}"


def _seg(value: str) -> str:
    from urllib.parse import quote

    return quote(value, safe="")
