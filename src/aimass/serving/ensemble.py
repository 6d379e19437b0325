"""An ensemble served as one model: requests batched once, every member run on the merged batch.

:class:`EnsembleRunner` is a :class:`ModelRunner` over an :class:`EnsemblePredictor`,
so the ensemble has the runner's dynamic batching (concurrent requests merged,
split back, a failing merge retried request by request). Each batch runs every
member once on the merged rows (members are batched too) and is fused once by
the deployment's combiner: a fusion strategy (``aimass.fusion.combiners`` or a
plugin's), a stacking meta-model, or a sequence (each member's ``predict`` is
the next one's input). Members must take the same inputs. Each member's
batches are counted under its own model and version.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from aimass.errors import InvalidInput
from aimass.flavors.signature import Signature, TensorSpec
from aimass.fusion.combiners import consumes, stacking_proba
from aimass.serving.protocol import NUMPY_DTYPES
from aimass.serving.runner import PREDICT, PREDICT_PROBA, ModelRunner

if TYPE_CHECKING:
    from numpy.typing import NDArray

    from aimass.entities.deployments import MetaModel
    from aimass.flavors.base import Batch
    from aimass.plugins.slots import FusionStrategy
    from aimass.serving.batcher import InFlight
    from aimass.serving.metrics import VersionMetrics

    Array = NDArray[Any]


@dataclass
class EnsembleMember:
    """One member: its model version, its weight in the combiner, and its (unbatched) runner."""

    model: str
    version: int
    weight: float
    runner: ModelRunner


class EnsemblePredictor:
    """Runs every member on a batch and fuses (or chains) their outputs: a ``Predictor``."""

    def __init__(
        self,
        members: Sequence[EnsembleMember],
        *,
        strategy: FusionStrategy | None,
        meta: MetaModel | None = None,
        sequence: bool = False,
    ) -> None:
        if not members:
            raise InvalidInput("an ensemble needs at least one member")
        if sum((strategy is not None, meta is not None, sequence)) != 1:
            raise ValueError("give a fusion strategy, a stacking meta-model or sequence")
        self.members = list(members)
        self.strategy = strategy
        self.meta = meta
        self.sequence = sequence
        self.weights = [m.weight for m in self.members]
        self.reads = "predict_proba" if meta is not None else consumes(strategy)
        last = self.members[-1].runner
        if sequence:
            gives_proba = len(last.output_specs) > 1 or last.signature is None
        else:
            gives_proba = self.reads == "predict_proba"
        outputs = [TensorSpec(name=PREDICT, datatype="FP64", shape=[-1])]
        if gives_proba:
            outputs.append(TensorSpec(name=PREDICT_PROBA, datatype="FP64", shape=[-1, -1]))
        first = self.members[0].runner.signature
        self.signature: Signature | None = (
            None if first is None else first.model_copy(update={"outputs": outputs})
        )

    def _run(self, member: EnsembleMember, batch: Batch, wanted: frozenset[str] | None) -> Any:
        runner = member.runner
        started = time.perf_counter()
        inputs: dict[str, Array] = dict(batch) if isinstance(batch, Mapping) else {"input": batch}
        answer = runner.predict_batch(inputs, wanted)
        metrics = runner.metrics
        if metrics is not None:  # one call of this member per ensemble batch
            metrics.request(200, time.perf_counter() - started)
        return answer

    def predict_named(self, batch: Batch, names: Sequence[str]) -> dict[str, Array]:
        """The ensemble's outputs for the (merged) batch."""
        if self.sequence:
            return self._chain(batch)
        answers = []
        for member in self.members:
            runner = member.runner
            name = runner.proba_output if self.reads == "predict_proba" else runner.predict_output
            answer = self._run(member, batch, frozenset((name,)))
            if name not in answer:
                raise InvalidInput(
                    f"member {member.model} version {member.version} has no {self.reads} "
                    "output, which this ensemble's combiner reads"
                )
            answers.append(answer[name])
        if self.meta is not None:
            proba = stacking_proba(self.meta, answers)
        else:
            assert self.strategy is not None
            import numpy as np

            fused = np.asarray(self.strategy.fuse(answers, self.weights))
            if self.reads == "predict":
                return {PREDICT: fused}
            proba = fused
        return {PREDICT: proba.argmax(axis=1), PREDICT_PROBA: proba}

    def _chain(self, batch: Batch) -> dict[str, Array]:
        """Each member's ``predict`` becomes the next one's (first) input, cast to its dtype."""
        for position, member in enumerate(self.members[:-1]):
            runner = member.runner
            value = self._run(member, batch, frozenset((runner.predict_output,)))
            batch = _next_inputs(self.members[position + 1], value[runner.predict_output])
        last = self.members[-1]
        answer = self._run(last, batch, None)
        result = {PREDICT: answer[last.runner.predict_output]}
        if last.runner.proba_output in answer:
            result[PREDICT_PROBA] = answer[last.runner.proba_output]
        return result

    def predict(self, batch: Batch) -> Array:
        """The fused ``predict``."""
        return self.predict_named(batch, (PREDICT,))[PREDICT]

    def predict_proba(self, batch: Batch) -> Array | None:
        """The fused ``predict_proba``, when the combiner makes one."""
        return self.predict_named(batch, (PREDICT_PROBA,)).get(PREDICT_PROBA)

    def close(self) -> None:
        """Close the members' predictors (a sandboxed one stops its host)."""
        for member in self.members:
            close = getattr(member.runner.predictor, "close", None)
            if callable(close):
                close()


class EnsembleRunner(ModelRunner):
    """The ensemble behind one batcher; binding its metrics binds each member's too."""

    def __init__(
        self,
        members: Sequence[EnsembleMember],
        *,
        strategy: FusionStrategy | None,
        meta: MetaModel | None = None,
        sequence: bool = False,
        max_batch_size: int = 64,
        max_delay_ms: float = 2.0,
        name: str = "ensemble",
        max_queue: int | None = None,
        max_wait_s: float | None = None,
        in_flight: InFlight | None = None,
    ) -> None:
        predictor = EnsemblePredictor(members, strategy=strategy, meta=meta, sequence=sequence)
        self.ensemble = predictor
        super().__init__(
            predictor,
            predictor.signature,
            max_batch_size,
            max_delay_ms,
            name=name,
            max_queue=max_queue,
            max_wait_s=max_wait_s,
            in_flight=in_flight,
        )

    @property
    def metrics(self) -> VersionMetrics | None:
        """The ensemble's metrics; binding them binds each member's under its own labels."""
        return self._ensemble_metrics

    @metrics.setter
    def metrics(self, bound: VersionMetrics | None) -> None:
        self._ensemble_metrics = bound
        if bound is not None:
            for member in self.ensemble.members:
                member.runner.metrics = bound.member(member.model, str(member.version))


def _next_inputs(member: EnsembleMember, value: Array) -> dict[str, Array]:
    """``value`` as the member's first input, in the dtype its signature declares."""
    signature = member.runner.signature
    if signature is None or not signature.inputs:
        return {"input": value}
    spec = signature.inputs[0]
    dtype = NUMPY_DTYPES.get(spec.datatype)
    return {spec.name: value if dtype is None or spec.datatype == "BYTES" else value.astype(dtype)}
