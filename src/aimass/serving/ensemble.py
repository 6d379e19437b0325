"""An ensemble served as one model: each member behind its own batcher, outputs fused per request.

A request to the ensemble goes to every member at once (``asyncio.gather``);
each member's :class:`ModelRunner` merges it with other requests into its own
batches, and the answers are fused by the deployment's combiner: a fusion
strategy (``aimass.fusion.combiners``, or a plugin's) or a stacking meta-model.
Members must take the same inputs. Each member counts its own requests,
latency, batch sizes and queue time under its model and version.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from aimass.errors import InvalidInput
from aimass.fusion.combiners import consumes, stacking_proba
from aimass.serving.protocol import NUMPY_DTYPES
from aimass.serving.runner import PREDICT, PREDICT_PROBA, Runner

if TYPE_CHECKING:
    from numpy.typing import NDArray

    from aimass.entities.deployments import MetaModel
    from aimass.flavors.signature import TensorSpec
    from aimass.plugins.slots import FusionStrategy
    from aimass.serving.metrics import VersionMetrics

    Array = NDArray[Any]


@dataclass
class EnsembleMember:
    """One member: its model version, its weight in the combiner, and its runner."""

    model: str
    version: int
    weight: float
    runner: Runner


class EnsembleRunner:
    """Runs the members for each request and fuses their answers (a ``serving.runner.Runner``).

    Outputs: ``predict`` always; ``predict_proba`` too when the combiner reads
    or makes probabilities (soft vote, stacking), ``predict`` then being the
    argmax column (a class index).
    """

    predict_output = PREDICT
    proba_output = PREDICT_PROBA

    def __init__(
        self,
        members: Sequence[EnsembleMember],
        *,
        strategy: FusionStrategy | None,
        meta: MetaModel | None = None,
        sequence: bool = False,
        name: str = "ensemble",
    ) -> None:
        if not members:
            raise InvalidInput("an ensemble needs at least one member")
        if sum((strategy is not None, meta is not None, sequence)) != 1:
            raise ValueError("give a fusion strategy, a stacking meta-model or sequence")
        self.sequence = sequence
        self.members = list(members)
        self.strategy = strategy
        self.meta = meta
        self.name = name
        self.weights = [m.weight for m in self.members]
        self.reads = "predict_proba" if meta is not None else consumes(strategy)
        self.output_specs: list[TensorSpec] = []
        self._metrics: VersionMetrics | None = None
        self._closed = False

    @property
    def metrics(self) -> VersionMetrics | None:
        """The ensemble's metrics; binding them binds each member's under its own labels."""
        return self._metrics

    @metrics.setter
    def metrics(self, bound: VersionMetrics | None) -> None:
        self._metrics = bound
        if bound is not None:
            for member in self.members:
                member.runner.metrics = bound.member(member.model, str(member.version))

    @property
    def closed(self) -> bool:
        """True once ``close`` has begun."""
        return self._closed

    async def _answers(self, inputs: dict[str, Array]) -> list[Array]:
        """Queue every member first (each into its own batcher), then collect their answers."""
        started = time.perf_counter()
        pending = []
        for member in self.members:
            runner = member.runner
            name = runner.proba_output if self.reads == "predict_proba" else runner.predict_output
            submit = getattr(runner, "submit", None)
            call = submit(inputs, (name,)) if submit is not None else runner.infer(inputs, (name,))
            pending.append((member, name, call))
        answers = []
        for position, (member, name, call) in enumerate(pending):
            try:
                answer = await call
            except BaseException:
                for _, _, rest in pending[position + 1 :]:
                    close = getattr(rest, "close", None)  # a coroutine not awaited: drop it
                    if close is not None:
                        close()
                raise
            metrics = member.runner.metrics
            if metrics is not None:
                metrics.request(200, time.perf_counter() - started)
            if name not in answer:
                raise InvalidInput(
                    f"member {member.model} version {member.version} has no {self.reads} "
                    "output, which this ensemble's combiner reads"
                )
            answers.append(answer[name])
        return answers

    async def infer(
        self, inputs: dict[str, Array], outputs: Collection[str] | None = None
    ) -> dict[str, Array]:
        """Every member's answer for these rows, fused into ``predict`` (and ``predict_proba``)."""
        if self.sequence:
            return await self._chain(inputs, outputs)
        answers = await self._answers(inputs)
        result: dict[str, Array] = {}
        if self.meta is not None:
            proba = stacking_proba(self.meta, answers)
        else:
            assert self.strategy is not None
            fused = np.asarray(self.strategy.fuse(answers, self.weights))
            if self.reads == "predict":
                result[PREDICT] = fused
                return result
            proba = fused
        result[PREDICT] = proba.argmax(axis=1)
        result[PREDICT_PROBA] = proba
        if outputs is not None:
            result = {k: v for k, v in result.items() if k in outputs}
        return result

    async def _chain(
        self, inputs: dict[str, Array], outputs: Collection[str] | None
    ) -> dict[str, Array]:
        """Each member's ``predict`` becomes the next one's (first) input, cast to its dtype."""
        for position, member in enumerate(self.members[:-1]):
            runner = member.runner
            started = time.perf_counter()
            answer = await runner.infer(inputs, (runner.predict_output,))
            if runner.metrics is not None:
                runner.metrics.request(200, time.perf_counter() - started)
            following = self.members[position + 1]
            inputs = _next_inputs(following, answer[runner.predict_output])
        last = self.members[-1].runner
        started = time.perf_counter()
        answer = await last.infer(inputs, None)
        if last.metrics is not None:
            last.metrics.request(200, time.perf_counter() - started)
        result = {PREDICT: answer[last.predict_output]}
        if last.proba_output in answer:
            result[PREDICT_PROBA] = answer[last.proba_output]
        if outputs is not None:
            result = {k: v for k, v in result.items() if k in outputs}
        return result

    def close_soon(self) -> None:
        """Refuse new requests on every member; queued ones still run."""
        self._closed = True
        for member in self.members:
            member.runner.close_soon()

    async def close(self) -> None:
        """Close every member (each finishes its queue first)."""
        self._closed = True
        await asyncio.gather(*(m.runner.close() for m in self.members))


def _next_inputs(member: EnsembleMember, value: Array) -> dict[str, Array]:
    """``value`` as the member's first input, in the dtype its signature declares."""
    signature = getattr(member.runner, "signature", None)
    if signature is None or not signature.inputs:
        return {"input": value}
    spec = signature.inputs[0]
    dtype = NUMPY_DTYPES.get(spec.datatype)
    return {spec.name: value if dtype is None or spec.datatype == "BYTES" else value.astype(dtype)}
