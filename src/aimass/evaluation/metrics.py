"""Metrics for each task, computed with scikit-learn and returned as an EvaluationReport.

Every metric is a plain, finite Python float at full precision. A metric that is
undefined for the data is left out and ``details["skipped"]`` says why; bad input
(mismatched lengths, empty arrays, scores of the wrong shape) raises
:class:`~aimass.errors.Unprocessable`.
"""

from __future__ import annotations

import warnings
from collections.abc import Collection, Hashable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from aimass.errors import Unprocessable
from aimass.evaluation._arrays import column, finite, json_scalar, numbers, same_length
from aimass.evaluation._labels import label_order, roc_auc
from aimass.evaluation.entities import EvaluationReport, EvaluationTask, PredictionTask

if TYPE_CHECKING:
    from numpy.typing import ArrayLike, NDArray
    from pydantic import JsonValue

    Array = NDArray[Any]

#: At most this many distinct float values can still be class labels (see infer_task).
MAX_FLOAT_CLASSES = 20
#: Silhouette costs O(n^2), so it is computed on a seeded sample of at most this many rows.
SILHOUETTE_SAMPLE = 10_000


def infer_task(y_true: ArrayLike) -> PredictionTask:
    """Guess whether targets are class labels or continuous values.

    Booleans, integers, strings and other objects are class labels (as in
    scikit-learn, an integer target is regression only when you say so). Floats
    are class labels when they take at most ``MAX_FLOAT_CLASSES`` distinct values
    and either all are whole numbers (integer labels read into a float column) or
    values repeat (at most half as many distinct values as rows); otherwise they
    are regression targets.
    """
    values = column("y_true", y_true)
    if values.dtype.kind != "f":
        return "classification"
    distinct = len(np.unique(values))
    whole = bool(np.all(values == np.round(values)))
    if distinct <= MAX_FLOAT_CLASSES and (whole or distinct * 2 <= len(values)):
        return "classification"
    return "regression"


def classification_report(
    y_true: ArrayLike,
    y_pred: ArrayLike,
    y_score: ArrayLike | None = None,
    labels: Sequence[Hashable] | None = None,
) -> EvaluationReport:
    """Accuracy, macro precision/recall/f1, weighted f1, ROC AUC, the confusion matrix.

    ``labels`` fixes the class order (default: the sorted labels seen in y_true
    and y_pred) and must cover both. ``y_score`` holds one column per label in that
    order (class probabilities, as predict_proba gives them); with two labels it
    may be one column, the score of the second label. ROC AUC (one-vs-rest macro
    for several classes) is reported only when every label occurs in y_true.
    Precision (recall) of a class never predicted (never true) counts as 0, and
    ``details["zero_division"]`` lists those classes.
    """
    from sklearn.metrics import (
        accuracy_score,
        confusion_matrix,
        f1_score,
        precision_recall_fscore_support,
    )

    true = column("y_true", y_true)
    pred = column("y_pred", y_pred)
    rows = same_length(("y_true", true), ("y_pred", pred))
    order = label_order(true, pred, labels)
    skipped: dict[str, str] = {}
    precision, recall, f1, _ = precision_recall_fscore_support(
        true, pred, labels=order, average="macro", zero_division=0.0
    )
    metrics: dict[str, Any] = {
        "accuracy": accuracy_score(true, pred),
        "precision": precision,
        "recall": recall,
        "f1": f1,
        "f1_weighted": f1_score(true, pred, labels=order, average="weighted", zero_division=0.0),
    }
    if y_score is not None:
        auc = roc_auc(true, order, y_score, rows, skipped)
        if auc is not None:
            metrics["roc_auc"] = auc
    per_p, per_r, per_f, support = precision_recall_fscore_support(
        true, pred, labels=order, average=None, zero_division=0.0
    )
    label_values: list[JsonValue] = [json_scalar(label) for label in order]
    with warnings.catch_warnings():
        # scikit-learn warns about any 1x1 matrix; the label order here is already explicit.
        warnings.filterwarnings("ignore", "A single label was found", UserWarning)
        predicted = confusion_matrix(true, pred, labels=order)
    details: dict[str, JsonValue] = {
        "confusion_matrix": {"labels": label_values, "matrix": predicted.tolist()},
        "per_class": [
            {
                "label": label,
                "precision": float(p),
                "recall": float(r),
                "f1": float(f),
                "support": int(s),
            }
            for label, p, r, f, s in zip(label_values, per_p, per_r, per_f, support, strict=True)
        ],
    }
    never_predicted: list[JsonValue] = [
        lab for lab, n in zip(label_values, predicted.sum(axis=0), strict=True) if not n
    ]
    never_true: list[JsonValue] = [
        lab for lab, n in zip(label_values, support, strict=True) if not n
    ]
    if never_predicted or never_true:
        details["zero_division"] = {"precision": never_predicted, "recall": never_true}
    return _report("classification", metrics, details, skipped, rows)


def regression_report(y_true: ArrayLike, y_pred: ArrayLike) -> EvaluationReport:
    """Root mean squared error, mean absolute error and R² (when y_true is not constant)."""
    from sklearn.metrics import mean_absolute_error, r2_score, root_mean_squared_error

    true = numbers("y_true", y_true)
    pred = numbers("y_pred", y_pred)
    rows = same_length(("y_true", true), ("y_pred", pred))
    skipped: dict[str, str] = {}
    metrics: dict[str, Any] = {
        "rmse": root_mean_squared_error(true, pred),
        "mae": mean_absolute_error(true, pred),
    }
    if rows < 2:
        skipped["r2"] = "r2 needs at least two rows"
    elif np.ptp(true) == 0:
        skipped["r2"] = "r2 is undefined when every y_true value is the same"
    else:
        metrics["r2"] = r2_score(true, pred, force_finite=False)
    return _report("regression", metrics, {}, skipped, rows)


def ranking_report(
    relevant: Sequence[Collection[Hashable]],
    ranked: Sequence[Sequence[Hashable]],
    k: int = 10,
) -> EvaluationReport:
    """Mean recall@k and NDCG@k (binary relevance) over users, named ``recall_at_{k}``.

    ``relevant[u]`` is the set of items user ``u`` cares about and ``ranked[u]``
    the items recommended to them, best first. recall@k is the share of a user's
    relevant items in the first k; NDCG@k divides the discounted gain of the first
    k (1 / log2(position + 1) per relevant item) by that of an ideal ranking. An
    item repeated in a ranking earns nothing after its first place. Users with no
    relevant items are skipped and counted in ``details["users_without_relevant"]``.
    scikit-learn's ndcg_score scores a fixed item set rather than ranked lists of
    ids, so the sums are written here (the tests check them against it).
    """
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise Unprocessable(f"k must be a whole number of at least 1; got {k!r}")
    if not relevant:
        raise Unprocessable("relevant is empty: give one collection of items per user")
    users = same_length(("relevant", relevant), ("ranked", ranked))
    discounts = 1.0 / np.log2(np.arange(2, k + 2))
    recalls: list[float] = []
    ndcgs: list[float] = []
    for wanted, ranking in zip(relevant, ranked, strict=True):
        wanted_set = set(wanted)
        if not wanted_set:
            continue
        seen: set[Hashable] = set()
        gains = np.zeros(k)
        for position, item in enumerate(ranking[:k]):
            if item in wanted_set and item not in seen:
                gains[position] = 1.0
            seen.add(item)
        ideal = discounts[: min(len(wanted_set), k)].sum()
        recalls.append(gains.sum() / len(wanted_set))
        ndcgs.append(float(gains @ discounts) / ideal)
    skipped: dict[str, str] = {}
    metrics: dict[str, Any] = {}
    if recalls:
        metrics[f"recall_at_{k}"] = np.mean(recalls)
        metrics[f"ndcg_at_{k}"] = np.mean(ndcgs)
    else:
        reason = "no user has any relevant item"
        skipped[f"recall_at_{k}"] = skipped[f"ndcg_at_{k}"] = reason
    details: dict[str, JsonValue] = {
        "k": k,
        "users_evaluated": len(recalls),
        "users_without_relevant": users - len(recalls),
    }
    return _report("ranking", metrics, details, skipped, users)


def clustering_report(
    X: ArrayLike, labels: ArrayLike, y_true: ArrayLike | None = None
) -> EvaluationReport:
    """Silhouette (for 2 <= clusters < rows), and adjusted Rand and NMI against y_true.

    Silhouette is computed on a seeded sample of ``SILHOUETTE_SAMPLE`` rows when
    there are more; ``details["silhouette_rows"]`` says how many were used.
    """
    from sklearn.metrics import (
        adjusted_rand_score,
        normalized_mutual_info_score,
        silhouette_score,
    )

    points = np.asarray(X)
    clusters = column("labels", labels)
    if points.ndim != 2 or points.dtype.kind not in "biuf":
        raise Unprocessable(
            f"X must be a 2-D array of numbers; got shape {list(points.shape)} of {points.dtype}"
        )
    rows = same_length(("X", points), ("labels", clusters))
    skipped: dict[str, str] = {}
    metrics: dict[str, Any] = {}
    n_clusters = len(np.unique(clusters))
    details: dict[str, JsonValue] = {"n_clusters": n_clusters}
    if not 2 <= n_clusters < rows:
        skipped["silhouette"] = f"silhouette needs 2 <= clusters < rows; got {n_clusters} clusters"
    elif not np.isfinite(points.astype(np.float64)).all():
        raise Unprocessable("X holds missing or infinite values")
    else:
        sample = np.arange(rows)
        if rows > SILHOUETTE_SAMPLE:
            sample = np.sort(np.random.default_rng(0).permutation(rows)[:SILHOUETTE_SAMPLE])
        sampled = clusters[sample]
        if 2 <= len(np.unique(sampled)) < len(sample):
            metrics["silhouette"] = silhouette_score(points[sample], sampled)
            details["silhouette_rows"] = len(sample)
        else:
            skipped["silhouette"] = "the silhouette sample holds fewer than two clusters"
    if y_true is not None:
        true = column("y_true", y_true)
        same_length(("labels", clusters), ("y_true", true))
        metrics["adjusted_rand"] = adjusted_rand_score(true, clusters)
        metrics["nmi"] = normalized_mutual_info_score(true, clusters)
    return _report("clustering", metrics, details, skipped, rows)


def _report(
    task: EvaluationTask,
    metrics: dict[str, Any],
    details: dict[str, JsonValue],
    skipped: dict[str, str],
    rows: int,
) -> EvaluationReport:
    values = finite(metrics, skipped)
    if skipped:
        details["skipped"] = dict(skipped)
    return EvaluationReport(task=task, metrics=values, details=details, n_rows=rows)
