"""The executor seam: run one attempt of a job somewhere, end it on request."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import JsonValue

from aimass.entities.jobs import JobCheckpoint, Resources

#: Exit status of an attempt that stopped on the platform's fault (a full store, a
#: database down past its lease): requeued without using the job's retry budget.
#: sysexits' EX_IOERR, beside the heartbeat's EX_TEMPFAIL (75, superseded).
EXIT_INFRA = 74


@dataclass(frozen=True)
class NodeCapacity:
    """What a node offers: CPUs, GPUs and memory (``None``: memory is not accounted).

    ``custom``: the custom resources it offers by name; ``None`` when the cluster's own
    scheduler places by them (Ray), so placement does not account them.
    """

    cpu: float
    gpu: int = 0
    memory_mb: int | None = None
    custom: Mapping[str, float] | None = None


@dataclass(frozen=True)
class AttemptSpec:
    """Everything an executor needs to run one attempt of a job."""

    job_id: int
    attempt: int
    project: str
    entry: str
    params: dict[str, JsonValue]
    resources: Resources
    scratch_dir: Path
    env: dict[str, str] = field(default_factory=dict)
    checkpoint: JobCheckpoint | None = None


@dataclass(frozen=True)
class AttemptExit:
    """How an attempt ended, as its executor saw it.

    ``returncode`` is the process's exit status: negative for a signal (``-9``
    after ``kill -9``). ``cancelled`` is True when ``cancel`` ended it.
    ``outputs`` is what the entry returned; ``error`` a one-line reason when it
    raised or could not be imported.
    """

    job_id: int
    attempt: int
    returncode: int
    cancelled: bool = False
    outputs: dict[str, JsonValue] | None = None
    error: str | None = None

    @property
    def infra_failure(self) -> bool:
        """Killed from outside (a signal nobody asked for): not the job's own fault."""
        return self.returncode < 0 and not self.cancelled


#: Called once per submitted attempt when it ends, from an executor thread.
ExitCallback = Callable[[AttemptExit], None]

#: Called with (job id, attempt, node) when an executor learns which node runs an attempt
#: (a Ray task reporting the node it landed on), from an executor thread.
PlacedCallback = Callable[[int, int, str], None]


class Executor(ABC):
    """Runs attempts; reports each one's end exactly once through ``on_exit``.

    ``submit`` returns once the attempt is started (or raises if it cannot be);
    ``cancel`` ends a job's attempt and its whole process tree, and is a no-op
    for a job it does not run; ``close`` ends everything and frees resources.
    """

    def __init__(self) -> None:
        self.on_exit: ExitCallback | None = None
        self.on_placed: PlacedCallback | None = None

    @abstractmethod
    def submit(self, attempt: AttemptSpec) -> None:
        """Start the attempt."""

    @abstractmethod
    def cancel(self, job_id: int) -> None:
        """End the job's running attempt, if this executor runs one."""

    @abstractmethod
    def close(self) -> None:
        """End every attempt and release the executor's resources."""

    def active(self) -> list[tuple[int, int]]:
        """The (job id, attempt) pairs running here now; the scheduler renews their leases."""
        return []

    def waiting(self) -> list[tuple[int, int]]:
        """The (job id, attempt) pairs accepted here whose process has not started yet.

        They wait in a cluster's own queue (a Ray task waiting for a node with room,
        or for its worker to start): nothing in them sends heartbeats yet, so the
        scheduler renews their leases itself.
        """
        return []

    def unavailable(self) -> str | None:
        """Why this executor can start nothing now (its cluster is unreachable), or None.

        The leader then starts no job and queued jobs wait with this reason.
        """
        return None

    def _placed(self, job_id: int, attempt: int, node: str) -> None:
        if self.on_placed is not None:
            self.on_placed(job_id, attempt, node)

    def _report(self, exit_: AttemptExit) -> None:
        if self.on_exit is not None:
            self.on_exit(exit_)
