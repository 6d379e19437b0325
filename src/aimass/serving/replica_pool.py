"""One served version over several replicas (runner processes), each behind its own batcher.

A :class:`ReplicaPool` is a :class:`~aimass.serving.runner.Runner`: ``infer`` sends
the request to the live replica with the fewest ongoing requests from this worker.
``grow`` starts a replica (``spawn`` loads it: a runner process that answered ready)
and only then lets it take traffic; ``shrink`` stops sending to the newest replica,
lets it finish what it holds, then closes it. The pool also keeps the integral of
its ongoing requests over time, so the autoscaler reads their exact mean between
two samples whatever the tick.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Collection
from typing import TYPE_CHECKING, Any

from aimass.errors import Overloaded
from aimass.serving.batcher import BatcherClosed

if TYPE_CHECKING:
    from numpy.typing import NDArray

    from aimass.entities.deployments import Autoscaling
    from aimass.flavors.signature import TensorSpec
    from aimass.serving.metrics import VersionMetrics
    from aimass.serving.runner import ModelRunner

    Array = NDArray[Any]

log = logging.getLogger("aimass.serving")

#: Loads replica ``index`` (its runner process answered ready) and returns its runner.
Spawn = Callable[[int], Awaitable["ModelRunner"]]


class _Replica:
    __slots__ = ("index", "ongoing", "runner")

    def __init__(self, index: int, runner: ModelRunner) -> None:
        self.index = index
        self.runner = runner
        self.ongoing = 0


class ReplicaPool:
    """Replicas of one version; requests go to the least busy live one."""

    def __init__(self, first: ModelRunner, spawn: Spawn, *, name: str) -> None:
        self.name = name
        self._spawn = spawn
        self._live: list[_Replica] = [_Replica(0, first)]
        self._closing: set[asyncio.Task[None]] = set()
        self._metrics: VersionMetrics | None = None
        self.predict_output = first.predict_output
        self.proba_output = first.proba_output
        self.output_specs: list[TensorSpec] = first.output_specs
        self.signature = first.signature
        self.ongoing = 0
        self._area = 0.0  # integral of ``ongoing`` over time, in request-seconds
        self._changed = time.monotonic()
        self._starting: set[int] = set()
        self._closed = False
        #: Set by the reconciler: the settings, and the node-wide name of the deployment.
        self.autoscaling: Autoscaling | None = None
        self.scale_key = name
        #: The replica count the node's autoscaler wants (None: not decided yet).
        self.desired: int | None = None

    @property
    def starting(self) -> int:
        """Replicas being loaded (not taking traffic yet)."""
        return len(self._starting)

    @property
    def replicas(self) -> int:
        """Replicas taking traffic."""
        return len(self._live)

    @property
    def predictor(self) -> Any:
        """The first replica's predictor (where it runs: a runner process)."""
        return self._live[0].runner.predictor if self._live else None

    @property
    def metrics(self) -> VersionMetrics | None:
        """Per-version metrics, shared by every replica's batcher."""
        return self._metrics

    @metrics.setter
    def metrics(self, value: VersionMetrics | None) -> None:
        self._metrics = value
        for replica in self._live:
            replica.runner.metrics = value

    @property
    def full(self) -> bool:
        """True while every live replica would refuse a request."""
        return all(r.runner.full for r in self._live)

    def area(self) -> tuple[float, float]:
        """(now, request-seconds of ongoing requests since the pool began): the mean ongoing
        between two reads is the area's difference over the time's."""
        self._tick(time.monotonic())
        return self._changed, self._area

    async def infer(
        self, inputs: dict[str, Array], outputs: Collection[str] | None = None
    ) -> dict[str, Array]:
        """Predict on the live replica with the fewest ongoing requests."""
        for _ in range(3):  # a replica retired between the pick and the put: pick again
            if not self._live:
                raise BatcherClosed(f"runner {self.name} is closed")
            replica = min(self._live, key=_busy)
            self._enter(replica)
            try:
                return await replica.runner.infer(inputs, outputs)
            except BatcherClosed:
                if self._closed:
                    raise
            except Overloaded:
                if all(r.runner.full for r in self._live):
                    raise
            finally:
                self._leave(replica)
        raise Overloaded("every replica refused the request; try again soon")

    async def grow(self) -> bool:
        """Load one more replica, then let it take traffic; False if it failed to load."""
        used = {r.index for r in self._live} | self._starting
        index = min(i for i in range(len(used) + 1) if i not in used)
        self._starting.add(index)
        try:
            runner = await self._spawn(index)
        except Exception as exc:
            log.warning("replica %d of %s failed to start: %s", index, self.name, exc)
            return False
        finally:
            self._starting.discard(index)
        if self._closed:
            await runner.close()
            return False
        runner.metrics = self._metrics
        self._live.append(_Replica(index, runner))
        log.info("%s: replica %d takes traffic (%d live)", self.name, index, len(self._live))
        return True

    def shrink(self) -> None:
        """Stop sending to the newest replica; it finishes what it holds, then closes."""
        if len(self._live) <= 1:
            return
        replica = self._live.pop()
        log.info("%s: replica %d drains (%d live)", self.name, replica.index, len(self._live))
        self._retire(replica.runner)

    def close_soon(self) -> None:
        """Refuse new requests; those already queued still run."""
        self._closed = True
        for replica in self._live:
            replica.runner.close_soon()

    async def close(self) -> None:
        """Finish the queued requests and close every replica (and those still draining)."""
        self._closed = True
        live, self._live = self._live, []
        await asyncio.gather(*(r.runner.close() for r in live), return_exceptions=True)
        if self._closing:
            await asyncio.gather(*self._closing, return_exceptions=True)

    def _retire(self, runner: ModelRunner) -> None:
        runner.close_soon()
        task = asyncio.get_running_loop().create_task(runner.close())
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    def _tick(self, now: float) -> None:
        self._area += self.ongoing * (now - self._changed)
        self._changed = now

    def _enter(self, replica: _Replica) -> None:
        self._tick(time.monotonic())
        self.ongoing += 1
        replica.ongoing += 1

    def _leave(self, replica: _Replica) -> None:
        self._tick(time.monotonic())
        self.ongoing -= 1
        replica.ongoing -= 1


def _busy(replica: _Replica) -> tuple[int, int]:
    return replica.ongoing, replica.index
