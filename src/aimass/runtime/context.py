"""``JobContext``: what code running inside a job uses to talk to the platform.

Every call goes over HTTP to the server that started the attempt (the same on
any node) with the token minted for this attempt, and every write names the
attempt: once the job has been given to another attempt, the server refuses
the write and the call raises :class:`AttemptSuperseded`.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager
from functools import cached_property
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, TypeVar

from pydantic import BaseModel

from aimass.entities.jobs import (
    JobArtifact,
    JobCheckpoint,
    JobOutputs,
    MetricsRecorded,
)
from aimass.errors import AimassError, Conflict, Unauthenticated
from aimass.job_environment import JobEnvironment
from aimass.runtime._retry import DEFAULT_WINDOW_S, retry_unavailable

if TYPE_CHECKING:
    import pandas as pd

    from aimass.client import Client
    from aimass.flavors.signature import Signature
    from aimass.registry.entities import ModelVersion

Answer = TypeVar("Answer", bound=BaseModel)


class AttemptSuperseded(AimassError):
    """The server refused a write: this attempt is no longer the job's current one."""

    status = 409
    code = "attempt_superseded"


class NotInAJob(AimassError):
    """The runtime was used outside a job (no ``AIMASS_JOB_ID`` in the environment)."""

    status = 400
    code = "not_in_a_job"


class JobContext:
    """The running attempt: its ids, params, scratch folder, and the calls that record results."""

    def __init__(self, env: Mapping[str, str] | JobEnvironment) -> None:
        job = env if isinstance(env, JobEnvironment) else JobEnvironment.from_env(env)
        if job is None:
            raise NotInAJob("aimass.runtime works inside a job: AIMASS_JOB_ID is not set")
        self.environment = job
        self.job_id = job.job_id
        self.attempt = job.attempt
        self.project = job.project
        self.kind = job.kind
        self.entry = job.entry
        self.scratch = job.scratch_dir or Path(os.getcwd())
        self.dataset = job.dataset
        self.dataset_version = job.dataset_version
        self._checkpoint: dict[str, Any] | None = (
            json.loads(job.checkpoint) if job.checkpoint else None
        )
        self._url = job.url
        self._token = job.token
        #: Versions this attempt registered (or replayed), per model name.
        self._registered: dict[str, int] = {}

    # -- plumbing -------------------------------------------------------------

    @cached_property
    def client(self) -> Client:
        """An SDK client acting as this attempt (editor on the job's project)."""
        from aimass.client import Client

        if not self._url:
            raise NotInAJob("this attempt was not given a server URL")
        return Client(url=self._url, token=self._token, project=self.project)

    def _attempt_path(self, suffix: str) -> str:
        return f"/api/v1/jobs/{self.job_id}/attempts/{self.attempt}/{suffix}"

    def _params(self, params: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """Query parameters naming the job's project: the attempt's token is limited to it.

        Every call below goes through here (or through the SDK, which scopes its own),
        so a job in any project reaches every route it needs.
        """
        return self.client._http.scoped(params)

    @property
    def _retry_window_s(self) -> float:
        """How long a write may be retried: the attempt's lease (three heartbeats)."""
        beat = self.environment.heartbeat_s
        return 3 * beat if beat else DEFAULT_WINDOW_S

    def _send(self, method: str, path: str, **kwargs: Any) -> Any:
        """One request, retried while the server is unavailable (503) within the lease.

        A ``body`` callable gives the bytes to send, called again on each try (a file
        opened afresh, so a retry resends it from its start).
        """
        params = self._params(kwargs.pop("params", None))
        body: Callable[[], AbstractContextManager[IO[bytes]]] | None = kwargs.pop("body", None)

        def once() -> Any:
            if body is None:
                return self.client._http.send(method, path, params=params, **kwargs)
            with body() as content:
                return self.client._http.send(
                    method, path, params=params, content=content, **kwargs
                )

        return retry_unavailable(once, self._retry_window_s)

    def _write(self, method: str, suffix: str, answer: type[Answer], **kwargs: Any) -> Answer:
        """Send one attempt write; its answer parsed into the wire model the server declares."""
        try:
            response = self._send(method, self._attempt_path(suffix), **kwargs)
        except (Conflict, Unauthenticated) as exc:
            raise AttemptSuperseded(
                f"job {self.job_id} attempt {self.attempt}: the write was refused ({exc.message})"
            ) from exc
        return answer.model_validate(response.json())

    # -- recording --------------------------------------------------------------

    def log_metric(self, name: str, value: float, step: int = 0) -> None:
        """Record ``value`` of metric ``name`` at ``step`` (an epoch, an iteration)."""
        self.log_metrics({name: value}, step)

    def log_metrics(self, metrics: Mapping[str, float], step: int = 0) -> None:
        """Record several metrics at one step in one call."""
        body = [{"name": k, "value": float(v), "step": int(step)} for k, v in metrics.items()]
        self._write("POST", "metrics", MetricsRecorded, json={"metrics": body})

    def log_params(self, params: Mapping[str, Any]) -> None:
        """Record the parameters the job actually used (shown with its outputs)."""
        self._write("POST", "outputs", JobOutputs, json={"params": dict(params)})

    def set_outputs(self, **outputs: Any) -> None:
        """Merge named outputs into the job's outputs (JSON values)."""
        self._write("POST", "outputs", JobOutputs, json=outputs)

    def log_artifact(self, path: str | Path, name: str | None = None) -> None:
        """Keep a file the job made (in the artifact store, listed in the job's artifacts)."""
        path = Path(path)
        self._write(
            "POST", f"artifacts/{name or path.name}", JobArtifact, body=lambda: path.open("rb")
        )

    # -- checkpoints ------------------------------------------------------------

    @property
    def checkpoint_step(self) -> int | None:
        """The step of the checkpoint this attempt resumes from, or None on a fresh start."""
        return int(self._checkpoint["step"]) if self._checkpoint else None

    def save_checkpoint(self, data: bytes | str | Path, step: int) -> None:
        """Save a checkpoint (bytes, or a file's path, streamed); a later attempt resumes from it.

        Raises ``InsufficientStorage`` when the artifact store is full: left uncaught,
        the attempt ends as an infrastructure failure and is requeued without using its
        retry budget, and the earlier checkpoints stay.
        """
        params = {"step": int(step)}
        if isinstance(data, (str, Path)):
            file = Path(data)
            self._write(
                "PUT", "checkpoint", JobCheckpoint, params=params, body=lambda: file.open("rb")
            )
        else:
            self._write("PUT", "checkpoint", JobCheckpoint, params=params, content=data)

    def load_checkpoint(self) -> bytes | None:
        """The bytes of the latest checkpoint of this job, or None if there is none."""
        if self._checkpoint is None:
            return None
        response = self._send("GET", f"/api/v1/jobs/{self.job_id}/checkpoints/latest")
        return bytes(response.content)

    def download_source(self, dest: Path) -> Path:
        """Download a script job's code into the folder ``dest``; the file's path."""
        return retry_unavailable(
            lambda: self.client._http.download(
                f"/api/v1/jobs/{self.job_id}/source",
                f"{dest}/",
                default_name=lambda: "source.py",
                params=self._params(),
            ),
            self._retry_window_s,
        )

    # -- data and models ----------------------------------------------------------

    def dataset_path(self) -> Path:
        """Download the job's dataset version into the scratch folder; its local path."""
        if self.dataset is None:
            raise NotInAJob(f"job {self.job_id} was submitted without a dataset")
        name = self.dataset
        version = self.dataset_version
        if version is None:
            version = retry_unavailable(
                lambda: self.client.datasets.get(name).latest_version, self._retry_window_s
            )
            if version is None:
                raise NotInAJob(f"dataset {name!r} has no version")
        folder = self.scratch / "data"
        folder.mkdir(exist_ok=True)
        chosen = version
        return retry_unavailable(
            lambda: self.client.datasets.download(name, chosen, f"{folder}/"),
            self._retry_window_s,
        )

    def load_dataset(self) -> pd.DataFrame:
        """The job's dataset as a DataFrame (CSV, Parquet, or NPZ arrays as columns)."""
        from aimass.datasets.profile import detect_format, read_table

        path = self.dataset_path()
        with path.open("rb") as head:
            fmt = detect_format(path.name, head.read(512))
        return read_table(path, fmt)

    def register_model(
        self,
        name: str,
        model: object,
        *,
        example: Any = None,
        signature: Signature | None = None,
        metrics: Mapping[str, float] | None = None,
        tags: Mapping[str, str] | None = None,
        description: str = "",
    ) -> ModelVersion:
        """Register a model version with lineage to this job and its dataset.

        ``model`` is an in-memory sklearn, torch or ONNX model (serialized safely)
        or the path of a model file. Refused if this attempt is no longer current.

        Once per job: an attempt that runs again after an earlier one was lost (its
        server killed or cut off after the earlier attempt had registered) gets the
        version that attempt registered, the n-th call of a model the n-th version
        the job made of it, instead of registering the same result twice.
        """
        from aimass.registry.entities import ModelVersion

        earlier = self._earlier_version(name)
        if earlier is not None:
            self.set_outputs(model=earlier.model, model_version=earlier.version)
            return earlier

        with tempfile.TemporaryDirectory(dir=self.scratch, prefix="model-") as tmp:
            if isinstance(model, (str, Path)):
                file, flavor = Path(model), None
            else:
                from aimass.flavors.serialize import serialize_model

                file, flavor = serialize_model(
                    model, Path(tmp), signature=signature, example=example
                )
            meta: dict[str, Any] = {
                "metrics": dict(metrics or {}),
                "tags": dict(tags or {}),
                "description": description,
                "job": {"id": self.job_id, "attempt": self.attempt},
            }
            if flavor is not None:
                meta["flavor"] = flavor
            if signature is not None:
                meta["signature"] = signature.model_dump(mode="json")
            try:
                data = retry_unavailable(
                    lambda: self.client._http.upload(
                        f"/api/v1/models/{name}/versions", file, meta, params=self._params()
                    ),
                    self._retry_window_s,
                )
            except (Conflict, Unauthenticated) as exc:
                raise AttemptSuperseded(
                    f"job {self.job_id} attempt {self.attempt}: registering {name!r} "
                    f"was refused ({exc.message})"
                ) from exc
        version = ModelVersion.model_validate(data)
        self._registered[name] = self._registered.get(name, 0) + 1
        self.set_outputs(model=version.model, model_version=version.version)
        return version

    def _earlier_version(self, name: str) -> ModelVersion | None:
        """The version an earlier attempt of this job registered for this call, if any."""
        from aimass.errors import NotFound
        from aimass.registry.entities import ModelVersion

        if self.attempt <= 1:
            return None
        try:
            listed = self._send("GET", f"/api/v1/models/{name}/versions").json()
        except NotFound:
            return None
        mine = [v for v in listed if (v.get("lineage") or {}).get("job_id") == str(self.job_id)]
        mine.sort(key=lambda v: v["version"])
        n = self._registered.get(name, 0)
        if n >= len(mine):
            return None
        self._registered[name] = n + 1
        return ModelVersion.model_validate(mine[n])

    def print(self, *values: object) -> None:
        """Print to the job's log, flushed at once so it streams live."""
        print(*values, flush=True)
        sys.stdout.flush()
