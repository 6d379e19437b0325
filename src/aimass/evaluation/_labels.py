"""Class labels for the classification metrics: their order, and ROC AUC over score columns."""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from aimass.errors import Unprocessable
from aimass.evaluation._arrays import json_scalar
from aimass.flavors.base import error_detail

if TYPE_CHECKING:
    from numpy.typing import ArrayLike, NDArray

    Array = NDArray[Any]


def label_order(true: Array, pred: Array, labels: Sequence[Hashable] | None) -> Array:
    """The class order: ``labels`` when given (it must cover the data), else sorted labels seen."""
    from sklearn.utils.multiclass import type_of_target, unique_labels

    for name, values in (("y_true", true), ("y_pred", pred)):
        if type_of_target(values).startswith("continuous"):
            raise Unprocessable(
                f"{name} holds continuous values, not class labels; evaluate it as regression"
            )
    try:
        seen = unique_labels(true, pred)
    except (TypeError, ValueError) as exc:
        raise Unprocessable(
            f"y_true and y_pred are not comparable labels: {error_detail(exc)}"
        ) from None
    if labels is None:
        return np.asarray(seen)
    order = np.asarray(list(labels))
    given = order.tolist()
    if order.ndim != 1 or not given:
        raise Unprocessable("labels must be a non-empty list of class labels")
    if len(set(given)) != len(given):
        raise Unprocessable("labels holds a label twice")
    unknown = [json_scalar(label) for label in seen.tolist() if label not in set(given)]
    if unknown:
        raise Unprocessable(f"y_true or y_pred hold labels missing from labels: {unknown[:10]}")
    return order


def roc_auc(
    true: Array, order: Array, y_score: ArrayLike, rows: int, skipped: dict[str, str]
) -> float | None:
    """ROC AUC from scores whose columns follow ``order``, or None (and why) when undefined."""
    from sklearn.metrics import roc_auc_score

    try:
        score = np.asarray(y_score, dtype=np.float64)
    except (TypeError, ValueError):
        raise Unprocessable("y_score must hold numbers") from None
    if score.ndim == 2 and score.shape[1] == 1:
        score = score[:, 0]
    if score.ndim not in (1, 2) or len(score) != rows:
        raise Unprocessable(
            f"y_score must have one row per y_true value ({rows}); got shape {list(score.shape)}"
        )
    if not np.isfinite(score).all():
        raise Unprocessable("y_score holds missing or infinite values")
    if len(order) < 2:
        skipped["roc_auc"] = "roc_auc needs at least two classes"
        return None
    columns = 1 if score.ndim == 1 else score.shape[1]
    if columns != len(order) and not (columns == 1 and len(order) == 2):
        raise Unprocessable(
            f"y_score has {columns} columns but there are {len(order)} labels "
            f"({[json_scalar(label) for label in order[:10]]}); give one column per label, "
            "in that order"
        )
    present = set(true.tolist())
    absent = [json_scalar(label) for label in order.tolist() if label not in present]
    if absent:
        skipped["roc_auc"] = f"roc_auc needs every class in y_true; absent: {absent[:10]}"
        return None
    if len(order) == 2:
        positive = score if score.ndim == 1 else score[:, 1]
        return float(roc_auc_score(true == order[1], positive))
    sort = np.argsort(order)  # scikit-learn wants the labels (and so the columns) sorted
    try:
        value = roc_auc_score(true, score[:, sort], multi_class="ovr", labels=order[sort])
    except ValueError as exc:
        raise Unprocessable(f"y_score cannot be scored: {error_detail(exc)}") from None
    return float(value)
