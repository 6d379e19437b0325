"""The built-in fusion strategies (mean, weighted mean, hard and soft vote) and the stacking math.

Each strategy is a ``FusionStrategy`` (``aimass.plugins.slots``): ``fuse(outputs,
weights)`` takes one array per member, same rows, and the members' weights.
Its ``consumes`` says which member output it reads: ``"predict"`` (labels or
values; its answer is the ensemble's ``predict``) or ``"predict_proba"`` (its
answer is the ensemble's ``predict_proba``, and ``predict`` is the argmax, a
class index). A plugin's strategy without ``consumes`` reads ``predict``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from aimass.errors import InvalidInput

if TYPE_CHECKING:
    from numpy.typing import NDArray

    from aimass.entities.deployments import MetaModel

    Array = NDArray[Any]

Consumes = Literal["predict", "predict_proba"]


def _weights(weights: Sequence[float], members: int) -> Array:
    w = np.asarray(weights, dtype=np.float64)
    if w.shape != (members,) or not np.all(w > 0):
        raise InvalidInput(f"an ensemble of {members} members needs {members} positive weights")
    return w


def _weighted_mean(outputs: Sequence[Array], weights: Sequence[float]) -> Array:
    """``sum(w_i * y_i) / sum(w_i)`` in float64, member by member (cheap for small batches)."""
    if len(weights) != len(outputs) or not outputs or min(weights) <= 0:
        raise InvalidInput(
            f"an ensemble of {len(outputs)} members needs {len(outputs)} positive weights"
        )
    total = float(sum(weights))
    acc = np.multiply(outputs[0], weights[0] / total, dtype=np.float64)
    for output, weight in zip(outputs[1:], weights[1:], strict=True):
        if np.shape(output) != acc.shape:
            raise InvalidInput(
                f"the members' outputs differ in shape: {acc.shape} and {np.shape(output)}"
            )
        acc += np.multiply(output, weight / total, dtype=np.float64)
    return acc


def _stack(outputs: Sequence[Array]) -> Array:
    shapes = {a.shape for a in outputs}
    if len(shapes) != 1:
        raise InvalidInput(f"the members' outputs differ in shape: {sorted(shapes)}")
    return np.stack([np.asarray(a, dtype=np.float64) for a in outputs])


@dataclass(frozen=True)
class Mean:
    """The plain mean of the members' ``predict`` (regression)."""

    name: str = "mean"
    consumes: Consumes = "predict"

    def fuse(self, outputs: Sequence[Array], weights: Sequence[float]) -> Array:
        """Element-wise mean over members."""
        return _stack(outputs).mean(axis=0)  # type: ignore[no-any-return]


@dataclass(frozen=True)
class WeightedMean:
    """The weighted mean of the members' ``predict``, weights from the routes."""

    name: str = "weighted_mean"
    consumes: Consumes = "predict"

    def fuse(self, outputs: Sequence[Array], weights: Sequence[float]) -> Array:
        """``sum(w_i * y_i) / sum(w_i)``."""
        return _weighted_mean(outputs, weights)


@dataclass(frozen=True)
class HardVote:
    """Each member's label is a vote of its weight; the heaviest label wins (ties: smallest)."""

    name: str = "hard_vote"
    consumes: Consumes = "predict"

    def fuse(self, outputs: Sequence[Array], weights: Sequence[float]) -> Array:
        """The winning label per row, in the members' label type."""
        w = _weights(weights, len(outputs))
        labels = np.stack([np.asarray(a).reshape(len(a)) for a in outputs])  # (members, rows)
        classes = np.unique(labels)
        scores = np.stack([((labels == c) * w[:, None]).sum(axis=0) for c in classes])
        return classes[scores.argmax(axis=0)]  # type: ignore[no-any-return]


@dataclass(frozen=True)
class SoftVote:
    """The weighted mean of the members' ``predict_proba``; ``predict`` is its argmax."""

    name: str = "soft_vote"
    consumes: Consumes = "predict_proba"

    def fuse(self, outputs: Sequence[Array], weights: Sequence[float]) -> Array:
        """``sum(w_i * p_i) / sum(w_i)`` over members' probability rows."""
        return _weighted_mean(outputs, weights)


BUILTIN_STRATEGIES = (Mean(), WeightedMean(), HardVote(), SoftVote())


def consumes(strategy: object) -> Consumes:
    """Which member output ``strategy`` reads (``predict`` unless it says otherwise)."""
    value = getattr(strategy, "consumes", "predict")
    return "predict_proba" if value == "predict_proba" else "predict"


def stacking_proba(meta: MetaModel, probas: Sequence[Array]) -> Array:
    """The meta-model's class probabilities over the members' ``predict_proba`` side by side."""
    features = np.concatenate([np.asarray(p, dtype=np.float64) for p in probas], axis=1)
    coef = np.asarray(meta.coef, dtype=np.float64)
    if features.shape[1] != coef.shape[1]:
        raise InvalidInput(
            f"the stacking meta-model reads {coef.shape[1]} columns, but the members' "
            f"predict_proba give {features.shape[1]}"
        )
    z = features @ coef.T + np.asarray(meta.intercept, dtype=np.float64)
    if z.shape[1] == 1:  # binary: one logit for class 1
        p1 = 1.0 / (1.0 + np.exp(-z[:, 0]))
        return np.column_stack([1.0 - p1, p1])
    z -= z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)  # type: ignore[no-any-return]
