"""Predictions and class scores from a model, for evaluation.

``evaluate_loaded`` calls a flavor-loaded predictor the way serving does: the
rows become arrays keyed by the signature's input names (a bare array when the
model has no signature), cast to the declared datatypes, then ``predict`` and,
for classifiers, ``predict_proba``.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from aimass.errors import Unprocessable
from aimass.evaluation._arrays import column, json_scalar
from aimass.evaluation.metrics import classification_report, infer_task, regression_report
from aimass.flavors.onnx import PROBABILITY_OUTPUTS
from aimass.flavors.signature import DATATYPES

if TYPE_CHECKING:
    from numpy.typing import ArrayLike, NDArray
    from pydantic import JsonValue

    from aimass.evaluation.entities import EvaluationReport, PredictionTask
    from aimass.flavors.base import Batch, Predictor
    from aimass.flavors.signature import TensorSpec

    Array = NDArray[Any]

#: Output names that hold predictions: skl2onnx classifiers (``label``, ``output_label``
#: with ZipMap), skl2onnx regressors (``variable``), and serving's unnamed first output.
LABEL_OUTPUTS = ("label", "output_label", "variable", "predict")
#: Output names that hold class probabilities (serving names an unnamed second output so).
SCORE_OUTPUTS = (*PROBABILITY_OUTPUTS, "predict_proba")


class SupportsPredict(Protocol):
    """Anything with scikit-learn's ``predict``; ``predict_proba`` is used when it has one."""

    def predict(self, X: Any, /) -> object:
        """Return one prediction per row of X."""
        ...


def predictions_and_scores(model: SupportsPredict, X: object) -> tuple[Array, Array | None]:
    """Return ``model.predict(X)`` and ``model.predict_proba(X)`` (None when it has none)."""
    y_pred = np.asarray(model.predict(X))
    # getattr honours scikit-learn's available_if (an SVC without probability=True has none),
    # and a flavor predictor answers None itself.
    predict_proba = getattr(model, "predict_proba", None)
    scores = None if predict_proba is None else predict_proba(X)
    return y_pred, None if scores is None else np.asarray(scores)


def split_outputs(outputs: Mapping[str, object]) -> tuple[Array, Array | None]:
    """Pick the predictions and the class probabilities from a model's named outputs.

    The predictions are the output named in :data:`LABEL_OUTPUTS`, or the only
    output besides the probabilities; the probabilities are the one named in
    :data:`SCORE_OUTPUTS`. A ZipMap output (one {class: probability} per row)
    becomes a matrix with a column per class, in the order of its keys.
    """
    names = list(outputs)
    scores_name = next((name for name in SCORE_OUTPUTS if name in outputs), None)
    label_name = next((name for name in LABEL_OUTPUTS if name in outputs), None)
    if label_name is None:
        others = [name for name in names if name != scores_name]
        if len(others) != 1:
            raise Unprocessable(
                f"cannot tell which of the outputs {names} holds the predictions; "
                f"name it one of {', '.join(LABEL_OUTPUTS)}"
            )
        label_name = others[0]
    y_pred = column(f"output {label_name!r}", outputs[label_name])
    if scores_name is None:
        return y_pred, None
    return y_pred, _probabilities(outputs[scores_name])


def evaluate_loaded(
    loaded: Predictor,
    X: object,
    y_true: ArrayLike,
    task: PredictionTask | None = None,
    labels: Sequence[Hashable] | None = None,
) -> EvaluationReport:
    """Predict X with a flavor-loaded model as serving does, and score it against y_true.

    X is a DataFrame or a 2-D array of rows (a 1-D array is one feature). A
    DataFrame feeds a multi-input model column by column, and a scikit-learn
    model fitted on named columns by those names. ``task`` defaults to
    :func:`infer_task` of y_true. For classification the probabilities are
    matched to classes by ``labels``, else by the estimator's ``classes_``, else
    by the sorted labels seen when they are as many as the score columns; when
    they cannot be matched ROC AUC is skipped and ``details["skipped"]`` says why.
    """
    chosen = infer_task(y_true) if task is None else task
    if chosen not in ("classification", "regression"):
        raise Unprocessable(
            f"a model's predictions are evaluated for classification or regression, not {chosen!r}"
        )
    true = column("y_true", y_true)
    batch, rows = _batch(loaded, X)
    if rows != len(true):
        raise Unprocessable(
            f"the inputs differ in length: X has {rows} rows, y_true has {len(true)}"
        )
    y_pred = column("the model's predictions", loaded.predict(batch))
    if chosen == "regression":
        return regression_report(true, y_pred)
    scores = loaded.predict_proba(batch)
    order, y_score, why = _score_labels(loaded, true, y_pred, scores, labels)
    report = classification_report(true, y_pred, y_score, order)
    if why is None:
        return report
    details = dict(report.details)
    previous = details.get("skipped")
    skipped: dict[str, JsonValue] = dict(previous) if isinstance(previous, dict) else {}
    skipped["roc_auc"] = why
    details["skipped"] = skipped
    return report.model_copy(update={"details": details})


def _probabilities(value: object) -> Array:
    """A probability tensor as it is, or ZipMap's one {class: probability} per row as a matrix."""
    if isinstance(value, np.ndarray) and value.dtype != object:
        return value
    rows = list(value) if isinstance(value, Sequence | np.ndarray) else []
    if rows and all(isinstance(row, Mapping) for row in rows):
        classes = list(rows[0])
        return np.array([[row[c] for c in classes] for row in rows], dtype=np.float64)
    return np.asarray(value)


def _score_labels(
    loaded: Predictor,
    true: Array,
    y_pred: Array,
    scores: Array | None,
    labels: Sequence[Hashable] | None,
) -> tuple[Sequence[Hashable] | None, Array | None, str | None]:
    """The label order of the score columns: (labels, scores, why the scores were dropped)."""
    if scores is None:
        return labels, None, "the model gives no class probabilities"
    if labels is not None:
        return labels, scores, None
    seen = set(true.tolist()) | set(y_pred.tolist())
    classes = getattr(getattr(loaded, "estimator", None), "classes_", None)
    if classes is not None:
        known = np.asarray(classes).tolist()
        unknown = [json_scalar(label) for label in seen - set(known)]
        if not unknown:
            return known, scores, None
        return None, None, f"y_true holds classes the model has no score for: {unknown[:10]}"
    columns = scores.shape[1] if scores.ndim == 2 else 1
    if columns == len(seen) or (columns == 1 and len(seen) == 2):
        return None, scores, None
    return (
        None,
        None,
        (
            f"the model's {columns} score columns cannot be matched to the {len(seen)} labels "
            "seen; pass labels in the model's class order"
        ),
    )


def _batch(loaded: Predictor, X: object) -> tuple[Batch, int]:
    """The predictor's batch for X, and its row count."""
    import pandas as pd

    specs = loaded.signature.inputs if loaded.signature is not None else []
    if isinstance(X, pd.DataFrame):
        by_name = {str(name): name for name in X.columns}
        if len(specs) > 1 and all(spec.name in by_name for spec in specs):
            # As serving's records path does: one tensor per input, from its column.
            batch = {}
            for spec in specs:
                array = X[by_name[spec.name]].to_numpy()
                if len(spec.shape) == 2 and array.ndim == 1:
                    array = array.reshape(-1, 1)
                batch[spec.name] = _conform(spec, array)
            return batch, len(X)
        names = _feature_names(loaded)
        if names is not None and len(names) > 1 and all(name in by_name for name in names):
            # The sklearn flavor rebuilds a DataFrame in the fitted column order from these.
            return {name: X[by_name[name]].to_numpy() for name in names}, len(X)
        array = X.to_numpy()
    else:
        array = np.asarray(X)
    if array.ndim == 1:
        array = array.reshape(-1, 1)
    if array.ndim == 0:
        raise Unprocessable("X must be rows of features, not a single value")
    if len(specs) > 1:
        raise Unprocessable(
            f"the model takes several inputs ({', '.join(spec.name for spec in specs)}); "
            "pass X as a DataFrame with a column for each"
        )
    if not specs:
        return array, len(array)
    return {specs[0].name: _conform(specs[0], array)}, len(array)


def _conform(spec: TensorSpec, array: Array) -> Array:
    """Cast an input to its declared datatype and check its fixed dimensions, as serving does."""
    target = np.dtype(DATATYPES[spec.datatype])
    if array.dtype != target:
        if array.dtype != object and not np.can_cast(array.dtype, target, casting="same_kind"):
            raise Unprocessable(
                f"X holds {array.dtype} values; the model's input {spec.name!r} "
                f"takes {spec.datatype}"
            )
        try:
            array = array.astype(target)
        except (TypeError, ValueError):
            raise Unprocessable(
                f"X does not hold {spec.datatype} values for the model's input {spec.name!r}"
            ) from None
    shape = list(array.shape)
    if len(shape) != len(spec.shape) or any(
        dim not in (-1, size) for dim, size in zip(spec.shape, shape, strict=False)
    ):
        raise Unprocessable(
            f"X has shape {shape}; the model's input {spec.name!r} takes {spec.shape} "
            "(-1: any size)"
        )
    return array


def _feature_names(loaded: Predictor) -> list[str] | None:
    """The column names a wrapped scikit-learn estimator was fitted on, if any."""
    names = getattr(getattr(loaded, "estimator", None), "feature_names_in_", None)
    return None if names is None else [str(name) for name in names]
