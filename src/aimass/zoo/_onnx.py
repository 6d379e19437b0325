"""Converting the classical entries' fitted models to ONNX, and checking the result.

Every model is converted with one float32 input ``input`` of shape [-1, features]
(or one string input ``text`` of shape [-1, 1]) and without ZipMap, so a
classifier answers ``label`` and ``probabilities`` tensors. The converted graph
is run by onnxruntime on sample rows and compared with the fitted model before
it is registered: a converter bug fails the job instead of serving wrong answers.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import numpy as np

#: How far ONNX probabilities or predictions may stray from the fitted model's (float32).
TOLERANCE = 1e-3


@contextlib.contextmanager
def _leaf_flags_as_ints() -> Iterator[None]:
    """skl2onnx 1.20 writes ``False`` for a leaf's missing-value flag, which onnx 1.23 refuses.

    Only HistGradientBoosting takes that path; the flag is cast to an int for the
    duration of the conversion, as the ONNX attribute is a list of ints.
    """
    import skl2onnx.common.tree_ensemble as tree_ensemble

    original = tree_ensemble.add_node

    def add_node(*args: Any, nodes_missing_value_tracks_true: Any = 0, **kwargs: Any) -> Any:
        flag = int(nodes_missing_value_tracks_true)
        return original(*args, nodes_missing_value_tracks_true=flag, **kwargs)

    tree_ensemble.add_node = add_node
    try:
        yield
    finally:
        tree_ensemble.add_node = original


def _dynamic_batch(model: Any) -> Any:
    """Make every output's first dimension variable (some converters fix it at 1)."""
    for output in model.graph.output:
        dims = output.type.tensor_type.shape.dim
        if len(dims) and dims[0].HasField("dim_value"):
            dims[0].dim_param = "N"
    return model


def _classifier_options(model: Any) -> dict[int, dict[str, Any]]:
    """No ZipMap on any classifier step: probabilities come out as a plain tensor."""
    steps = [step for _, step in getattr(model, "steps", [])] or [model]
    return {id(step): {"zipmap": False} for step in steps if hasattr(step, "predict_proba")}


def sklearn_to_onnx(model: Any, n_features: int) -> Any:
    """A fitted scikit-learn estimator or pipeline on float features as an ONNX ModelProto."""
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import FloatTensorType

    with _leaf_flags_as_ints():
        converted = convert_sklearn(
            model,
            initial_types=[("input", FloatTensorType([None, n_features]))],
            options=_classifier_options(model),
        )
    return _dynamic_batch(converted)


def text_to_onnx(pipeline: Any) -> Any:
    """A fitted TfidfVectorizer + classifier pipeline taking raw strings, as ONNX.

    The lower-casing node gets the "C" locale, which every C library has, instead
    of the converter's en_US.UTF-8, which onnxruntime refuses to load without.
    """
    import onnx
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import StringTensorType

    vectorizer = pipeline.steps[0][1]
    options: dict[int, dict[str, Any]] = _classifier_options(pipeline)
    options[id(vectorizer)] = {"tokenexp": r"\b\w\w+\b"}
    converted = convert_sklearn(
        pipeline, initial_types=[("text", StringTensorType([None, 1]))], options=options
    )
    for node in converted.graph.node:
        if node.op_type == "StringNormalizer":
            kept = [a for a in node.attribute if a.name != "locale"]
            del node.attribute[:]
            node.attribute.extend([*kept, onnx.helper.make_attribute("locale", "C")])
    return _dynamic_batch(converted)


def lightgbm_to_onnx(model: Any, n_features: int) -> Any:
    """A fitted LightGBM scikit-learn model as ONNX (onnxmltools)."""
    from onnxmltools import convert_lightgbm
    from onnxmltools.convert.common.data_types import FloatTensorType

    converted = convert_lightgbm(
        model, initial_types=[("input", FloatTensorType([None, n_features]))], zipmap=False
    )
    return _dynamic_batch(converted)


def xgboost_to_onnx(model: Any, n_features: int) -> Any:
    """A fitted XGBoost scikit-learn model as ONNX (onnxmltools)."""
    from onnxmltools import convert_xgboost
    from onnxmltools.convert.common.data_types import FloatTensorType

    converted = convert_xgboost(
        model, initial_types=[("input", FloatTensorType([None, n_features]))]
    )
    return _dynamic_batch(converted)


def check_onnx(converted: Any, model: Any, sample: Any) -> None:
    """Run the ONNX graph on ``sample`` and compare it with the fitted model; raise if apart."""
    import onnxruntime as ort

    session = ort.InferenceSession(
        converted.SerializeToString(), providers=["CPUExecutionProvider"]
    )
    feed_name = session.get_inputs()[0].name
    feed = sample if feed_name == "text" else np.asarray(sample, dtype=np.float32)
    results = session.run(None, {feed_name: feed})
    rows = feed.reshape(-1) if feed_name == "text" else feed
    if hasattr(model, "predict_proba") and len(results) > 1:
        expected, got = model.predict_proba(rows), results[1]
    else:
        expected, got = model.predict(rows), results[0]
    expected = np.asarray(expected, dtype=np.float64).reshape(len(rows), -1)
    gap = float(
        np.max(np.abs(np.asarray(got, dtype=np.float64).reshape(expected.shape) - expected))
    )
    if not gap <= TOLERANCE * max(1.0, float(np.max(np.abs(expected)))):
        raise RuntimeError(f"the ONNX export differs from the fitted model by {gap:.3g}")
