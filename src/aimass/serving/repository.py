"""The served deployments of one worker process, swapped atomically by the reconciler."""

from __future__ import annotations

import asyncio
import bisect
import logging
import random
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field, replace
from itertools import accumulate
from typing import TYPE_CHECKING, Literal

from aimass.serving.batcher import InFlight

if TYPE_CHECKING:
    from aimass.flavors.signature import Signature
    from aimass.serving.runner import Runner

log = logging.getLogger("aimass.serving")

_NOTHING = nullcontext()

DeploymentState = Literal["pending", "loading", "ready", "failed"]


@dataclass(frozen=True)
class BatchingConfig:
    """Dynamic batching settings of a deployment."""

    max_batch_size: int = 64
    max_delay_ms: float = 2.0
    max_queue: int = 128


@dataclass
class ServedVersion:
    """One loaded model version of a deployment, with its share of the traffic."""

    model: str
    version: int
    weight: float
    runner: Runner
    signature: Signature | None
    flavor: str


@dataclass
class ServedDeployment:
    """A deployment as this process serves it: its loaded versions and its state.

    Treat it as immutable once handed to the repository: ``pick`` precomputes
    the cumulative weights. A deployment with versions answers requests whatever
    its state says (it keeps serving its old versions while a new load is
    ``loading`` or after one ``failed``); one without versions answers 503.
    """

    name: str
    project: str
    versions: list[ServedVersion]
    state: DeploymentState = "ready"
    reason: str | None = None
    _cumulative: list[float] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        self._cumulative = list(accumulate(max(v.weight, 0.0) for v in self.versions))

    @property
    def serving(self) -> bool:
        """True when the deployment has versions to answer with."""
        return bool(self.versions)

    def pick(self) -> ServedVersion:
        """Choose a version at random in proportion to the weights (canary, A/B)."""
        versions = self.versions
        if len(versions) == 1:
            return versions[0]
        if not versions:
            raise LookupError(f"deployment {self.name!r} has no loaded version")
        total = self._cumulative[-1]
        if total <= 0:
            return versions[0]
        index = bisect.bisect_right(self._cumulative, random.random() * total)
        return versions[min(index, len(versions) - 1)]

    def version(self, number: int) -> ServedVersion | None:
        """Return the served version with this number, or None."""
        for served in self.versions:
            if served.version == number:
                return served
        return None

    def primary(self) -> ServedVersion | None:
        """The version with the largest weight (the first of equals), or None."""
        if not self.versions:
            return None
        return max(self.versions, key=lambda v: v.weight)


class ModelRepository:
    """The deployments this process serves, keyed by (project, name).

    Every method is meant to be called on the event loop thread that serves the
    requests (the reconciler's, after loading models in a worker thread). ``put``
    is an atomic swap: requests that already hold a runner of the replaced
    deployment finish, since a retired runner runs everything queued before it
    stops, and requests that arrive afterwards see only the new deployment.
    Runners carried over into the new deployment keep running.
    """

    def __init__(self) -> None:
        self._deployments: dict[tuple[str, str], ServedDeployment] = {}
        self._in_flight: dict[tuple[str, str], InFlight] = {}
        self._closing: set[asyncio.Task[None]] = set()

    def in_flight(self, name: str, project: str) -> InFlight:
        """The count of requests in flight for this deployment, shared by its batchers.

        The same object across swaps, so a new version's batcher sees the requests
        admitted before it took over.
        """
        key = (project, name)
        count = self._in_flight.get(key)
        if count is None:
            count = self._in_flight[key] = InFlight()
        return count

    def admit(self, name: str, project: str) -> AbstractContextManager[object]:
        """``with repository.admit(name, project):`` around reading and queueing one request
        for that deployment: its batchers wait for it (see ``InFlight``). A deployment this
        process does not serve counts nothing."""
        if (project, name) not in self._deployments:
            return _NOTHING
        return self.in_flight(name, project).admit()

    def put(self, deployment: ServedDeployment) -> None:
        """Serve ``deployment``, replacing the one of that name and retiring its unused runners."""
        key = (deployment.project, deployment.name)
        old = self._deployments.get(key)
        self._deployments[key] = deployment
        if old is not None:
            keep = {id(v.runner) for v in deployment.versions}
            self._retire([v.runner for v in old.versions if id(v.runner) not in keep])

    def set_state(
        self,
        name: str,
        project: str,
        state: DeploymentState,
        reason: str | None = None,
    ) -> None:
        """Set a deployment's state; one not served yet is added with no versions."""
        key = (project, name)
        old = self._deployments.get(key)
        if old is None:
            self._deployments[key] = ServedDeployment(name, project, [], state, reason)
        else:
            self._deployments[key] = replace(old, state=state, reason=reason)

    def remove(self, name: str, project: str) -> None:
        """Stop serving a deployment; its runners finish what is queued, then close."""
        old = self._deployments.pop((project, name), None)
        self._in_flight.pop((project, name), None)
        if old is not None:
            self._retire([v.runner for v in old.versions])

    def get(self, name: str, project: str) -> ServedDeployment | None:
        """Return the deployment, or None."""
        return self._deployments.get((project, name))

    def all(self) -> list[ServedDeployment]:
        """Every deployment, in the order they were first put."""
        return list(self._deployments.values())

    async def close(self) -> None:
        """Stop serving everything and wait until every runner has finished and closed."""
        runners = [v.runner for d in self._deployments.values() for v in d.versions]
        self._deployments.clear()
        self._in_flight.clear()
        self._retire(runners)
        if self._closing:
            await asyncio.gather(*self._closing, return_exceptions=True)

    def _retire(self, runners: list[Runner]) -> None:
        if not runners:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            loop = None
        for runner in runners:
            # Refuse new requests now, so the swap is atomic; the queued ones still run.
            runner.close_soon()
            if loop is None:
                continue
            task = loop.create_task(_close(runner))
            self._closing.add(task)
            task.add_done_callback(self._closing.discard)


async def _close(runner: Runner) -> None:
    try:
        await runner.close()
    except Exception:
        log.exception("closing the runner of %s failed", runner.name)
