"""Evaluating real models loaded through the skops and ONNX flavors, and their raw outputs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from aimass.errors import Unprocessable
from aimass.evaluation import (
    classification_report,
    evaluate_loaded,
    predictions_and_scores,
    regression_report,
    split_outputs,
)
from aimass.flavors.onnx import OnnxFlavor
from aimass.flavors.sklearn import SklearnFlavor

Data = tuple[Any, Any]


@pytest.fixture(scope="module")
def iris() -> Data:
    """Iris as a DataFrame (named columns) and its integer target."""
    from sklearn.datasets import load_iris

    features, target = load_iris(return_X_y=True, as_frame=True)
    return features, target.to_numpy()


@pytest.fixture(scope="module")
def diabetes() -> Data:
    """The diabetes regression data (442 x 10, float target)."""
    from sklearn.datasets import load_diabetes

    features, target = load_diabetes(return_X_y=True)
    return features, target


@pytest.fixture(scope="module")
def iris_model(iris: Data) -> Any:
    """A scaled logistic regression fitted on iris without column names."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    features, target = iris
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))
    return model.fit(features.to_numpy(), target)


@pytest.fixture(scope="module")
def ridge(diabetes: Data) -> Any:
    from sklearn.linear_model import Ridge

    features, target = diabetes
    return Ridge(alpha=0.1).fit(features, target)


def _skops_file(tmp_path: Path, model: Any) -> Path:
    import skops.io as sio

    path = tmp_path / "model.skops"
    sio.dump(model, path)
    return path


def _onnx_file(tmp_path: Path, model: Any, columns: int, **options: Any) -> Path:
    from skl2onnx import to_onnx

    proto = to_onnx(model, np.zeros((1, columns), dtype=np.float32), options=options or None)
    path = tmp_path / "model.onnx"
    path.write_bytes(proto.SerializeToString())
    return path


def test_skops_classifier_is_evaluated_like_the_estimator(
    tmp_path: Path, iris: Data, iris_model: Any
) -> None:
    features, target = iris
    loaded = SklearnFlavor().load(_skops_file(tmp_path, iris_model), trusted=False)

    report = evaluate_loaded(loaded, features.to_numpy(), target)

    expected = classification_report(
        target,
        iris_model.predict(features.to_numpy()),
        iris_model.predict_proba(features.to_numpy()),
    )
    assert report == expected
    assert report.metrics["accuracy"] == np.mean(iris_model.predict(features.to_numpy()) == target)
    assert 0.9 < report.metrics["roc_auc"] <= 1.0
    matrix = report.details["confusion_matrix"]
    assert isinstance(matrix, dict)
    assert matrix["labels"] == [0, 1, 2]


def test_a_model_fitted_on_named_columns_gets_them_by_name(tmp_path: Path, iris: Data) -> None:
    from sklearn.linear_model import LogisticRegression

    features, target = iris
    model = LogisticRegression(max_iter=1000).fit(features, target)
    loaded = SklearnFlavor().load(_skops_file(tmp_path, model), trusted=False)
    shuffled = features[list(reversed(features.columns))]

    # No "X does not have valid feature names" warning (warnings are errors here).
    report = evaluate_loaded(loaded, shuffled, target)

    expected = classification_report(target, model.predict(features), model.predict_proba(features))
    assert report == expected


def test_skops_regressor_is_evaluated_with_an_inferred_task(
    tmp_path: Path, diabetes: Data, ridge: Any
) -> None:
    features, target = diabetes
    loaded = SklearnFlavor().load(_skops_file(tmp_path, ridge), trusted=False)

    report = evaluate_loaded(loaded, features, target)

    assert report == regression_report(target, ridge.predict(features))
    assert report.metrics["r2"] > 0.4


def test_onnx_classifier_is_evaluated_like_the_estimator(
    tmp_path: Path, iris: Data, iris_model: Any
) -> None:
    features, target = iris
    path = _onnx_file(tmp_path, iris_model, 4, zipmap=False)
    loaded = OnnxFlavor().load(path, trusted=False)

    report = evaluate_loaded(loaded, features, target, task="classification")

    reference = classification_report(
        target,
        iris_model.predict(features.to_numpy()),
        iris_model.predict_proba(features.to_numpy()),
    )
    assert report.task == "classification"
    assert report.metrics == pytest.approx(reference.metrics, abs=1e-3)
    assert report.details["confusion_matrix"] == reference.details["confusion_matrix"]


def test_onnx_regressor_is_evaluated_from_its_variable_column(
    tmp_path: Path, diabetes: Data, ridge: Any
) -> None:
    features, target = diabetes
    loaded = OnnxFlavor().load(_onnx_file(tmp_path, ridge, 10), trusted=False)

    report = evaluate_loaded(loaded, features, target)

    reference = regression_report(target, ridge.predict(features))
    assert report.task == "regression"
    assert report.metrics == pytest.approx(reference.metrics, rel=1e-4)


def _two_input_adder(tmp_path: Path) -> Path:
    """An ONNX model with inputs "a" and "b", each [-1, 1], whose output is a + b."""
    import onnx
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("Add", ["a", "b"], ["variable"])],
        "adder",
        [
            helper.make_tensor_value_info("a", TensorProto.FLOAT, [None, 1]),
            helper.make_tensor_value_info("b", TensorProto.FLOAT, [None, 1]),
        ],
        [helper.make_tensor_value_info("variable", TensorProto.FLOAT, [None, 1])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    path = tmp_path / "adder.onnx"
    onnx.save_model(model, path)
    return path


def test_a_multi_input_model_takes_a_dataframe_column_per_input(tmp_path: Path) -> None:
    import pandas as pd

    loaded = OnnxFlavor().load(_two_input_adder(tmp_path), trusted=False)
    frame = pd.DataFrame({"b": [1.0, 2.0, 3.0], "a": [0.5, 0.5, 1.0]})

    report = evaluate_loaded(loaded, frame, [1.5, 2.0, 4.0], task="regression")

    assert report.metrics == pytest.approx(
        {"rmse": (0.25 / 3) ** 0.5, "mae": 0.5 / 3, "r2": 1 - 0.25 / 3.5}
    )
    with pytest.raises(Unprocessable, match="takes several inputs"):
        evaluate_loaded(loaded, frame.to_numpy(), [1.5, 2.0, 4.0], task="regression")


def test_bad_input_to_evaluate_loaded_is_unprocessable(
    tmp_path: Path, iris: Data, iris_model: Any
) -> None:
    features, target = iris
    loaded = OnnxFlavor().load(_onnx_file(tmp_path, iris_model, 4), trusted=False)

    with pytest.raises(Unprocessable, match="X has 150 rows, y_true has 149"):
        evaluate_loaded(loaded, features, target[:-1])
    with pytest.raises(Unprocessable, match=r"X has shape \[150, 3\]; the model's input 'X'"):
        evaluate_loaded(loaded, features.iloc[:, :3], target)
    ranking: Any = "ranking"
    with pytest.raises(Unprocessable, match="not 'ranking'"):
        evaluate_loaded(loaded, features, target, task=ranking)


def test_scores_that_cannot_be_matched_to_classes_skip_roc_auc(
    tmp_path: Path, iris: Data, iris_model: Any
) -> None:
    features, target = iris
    loaded = OnnxFlavor().load(_onnx_file(tmp_path, iris_model, 4, zipmap=False), trusted=False)
    setosa = target == 0  # the model scores 3 classes; these rows show only one

    report = evaluate_loaded(loaded, features[setosa], target[setosa])
    with_labels = evaluate_loaded(loaded, features[setosa], target[setosa], labels=[0, 1, 2])

    assert report.metrics["accuracy"] == 1.0
    assert "roc_auc" not in report.metrics
    assert report.details["skipped"] == {
        "roc_auc": "the model's 3 score columns cannot be matched to the 1 labels seen; "
        "pass labels in the model's class order"
    }
    assert with_labels.details["skipped"] == {
        "roc_auc": "roc_auc needs every class in y_true; absent: [1, 2]"
    }


def test_predictions_and_scores_from_estimators(iris: Data, iris_model: Any) -> None:
    from sklearn.svm import SVC

    features, target = iris
    plain = features.to_numpy()

    y_pred, y_score = predictions_and_scores(iris_model, plain)
    svc_pred, svc_score = predictions_and_scores(SVC().fit(plain, target), plain)

    np.testing.assert_array_equal(y_pred, iris_model.predict(plain))
    assert y_score is not None
    np.testing.assert_array_equal(y_score, iris_model.predict_proba(plain))
    assert svc_pred.shape == (150,)
    assert svc_score is None  # SVC without probability=True has no predict_proba


def test_split_outputs_of_onnx_sessions(tmp_path: Path, iris: Data, iris_model: Any) -> None:
    features, _ = iris
    rows = features.to_numpy(dtype=np.float32)
    tensors = OnnxFlavor().load(_onnx_file(tmp_path, iris_model, 4, zipmap=False), False)
    zipped = OnnxFlavor().load(_onnx_file(tmp_path, iris_model, 4, zipmap=True), False)

    def outputs(session: Any) -> dict[str, Any]:
        names = [o.name for o in session.get_outputs()]
        return dict(zip(names, session.run(None, {"X": rows}), strict=True))

    label, proba = split_outputs(outputs(tensors.session))
    zip_label, zip_proba = split_outputs(outputs(zipped.session))

    np.testing.assert_array_equal(label, iris_model.predict(rows))
    assert proba is not None and zip_proba is not None
    np.testing.assert_allclose(proba, iris_model.predict_proba(rows), atol=1e-4)
    np.testing.assert_array_equal(zip_label, label)
    np.testing.assert_allclose(zip_proba, proba, atol=1e-6)


def test_split_outputs_names() -> None:
    values = np.array([[1.0], [2.0]])

    regression, none = split_outputs({"variable": values})
    only, _ = split_outputs({"scores": np.array([3, 4])})
    served, served_proba = split_outputs({"predict": np.array([0, 1]), "predict_proba": np.eye(2)})

    np.testing.assert_array_equal(regression, [1.0, 2.0])
    assert none is None
    np.testing.assert_array_equal(only, [3, 4])
    np.testing.assert_array_equal(served, [0, 1])
    assert served_proba is not None
    with pytest.raises(Unprocessable, match="cannot tell which of the outputs"):
        split_outputs({"x": values, "y": values})


def test_a_model_without_probabilities_says_why_roc_auc_is_missing(
    tmp_path: Path, iris: Data, iris_model: Any
) -> None:
    features, target = iris
    # With ZipMap the probabilities are a sequence of maps, which the flavor does not return.
    loaded = OnnxFlavor().load(_onnx_file(tmp_path, iris_model, 4, zipmap=True), trusted=False)

    report = evaluate_loaded(loaded, features, target)

    assert report.details["skipped"] == {"roc_auc": "the model gives no class probabilities"}
    assert report.metrics["accuracy"] > 0.9
