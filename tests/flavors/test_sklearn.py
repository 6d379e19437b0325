"""The skops flavor: safe round trips, and refusal of types skops does not trust."""

from __future__ import annotations

import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sklearn.base import BaseEstimator, ClassifierMixin

from aimass.errors import Unprocessable
from aimass.flavors.registry import FlavorRegistry, inspect_upload
from aimass.flavors.serialize import serialize_model
from aimass.flavors.sklearn import SklearnFlavor

Data = tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]


class MajorityClassifier(ClassifierMixin, BaseEstimator):  # type: ignore[misc]
    """A custom estimator: a type skops does not trust by default."""

    def fit(self, features: Any, target: Any) -> MajorityClassifier:
        self.classes_, counts = np.unique(target, return_counts=True)
        self.n_features_in_ = np.asarray(features).shape[1]
        self.majority_ = self.classes_[np.argmax(counts)]
        return self

    def predict(self, features: Any) -> Any:
        return np.full(len(features), self.majority_)


def test_skops_round_trip_with_predict_proba(
    registry: FlavorRegistry, tmp_path: Path, logreg: Any, cancer: Data
) -> None:
    features, _ = cancer
    path, flavor_name = serialize_model(logreg, tmp_path)

    flavor, signature = inspect_upload(registry, path, "model.skops", None, trusted=False)
    predictor = registry.get(flavor).load(path, trusted=False)

    assert (flavor_name, flavor) == ("sklearn", "sklearn")
    np.testing.assert_array_equal(predictor.predict(features), logreg.predict(features))
    proba = predictor.predict_proba(features)
    assert proba is not None
    np.testing.assert_allclose(proba, logreg.predict_proba(features))
    assert signature is not None
    assert [(i.name, i.datatype, i.shape) for i in signature.inputs] == [
        ("input", "FP64", [-1, 30])
    ]
    assert [(o.name, o.datatype, o.shape) for o in signature.outputs] == [
        ("predict", "INT64", [-1]),
        ("predict_proba", "FP64", [-1, 2]),
    ]


def test_skops_regressor_has_no_predict_proba(tmp_path: Path, cancer: Data) -> None:
    from sklearn.linear_model import Ridge

    features, target = cancer
    path, _ = serialize_model(Ridge().fit(features, target), tmp_path)

    predictor = SklearnFlavor().load(path, trusted=False)

    assert predictor.predict_proba(features) is None
    assert predictor.signature is not None
    assert [(o.name, o.datatype) for o in predictor.signature.outputs] == [("predict", "FP64")]


def test_skops_with_untrusted_types_is_refused_unless_trusted(
    registry: FlavorRegistry, tmp_path: Path, cancer: Data
) -> None:
    features, target = cancer
    path, _ = serialize_model(MajorityClassifier().fit(features, target), tmp_path)

    with pytest.raises(Unprocessable, match="MajorityClassifier"):
        inspect_upload(registry, path, "model.skops", None, trusted=False)

    flavor, signature = inspect_upload(registry, path, "model.skops", None, trusted=True)
    predictor = registry.get(flavor).load(path, trusted=True)
    assert signature is not None
    assert (predictor.predict(features[:3]) == 1).all()
    assert predictor.predict_proba(features[:3]) is None


def test_corrupt_skops_is_unprocessable(registry: FlavorRegistry, tmp_path: Path) -> None:
    path = tmp_path / "broken.skops"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("schema.json", "{not json")

    assert registry.detect(path, "broken.skops").name == "sklearn"
    with pytest.raises(Unprocessable, match="not a valid skops file"):
        inspect_upload(registry, path, "broken.skops", None, trusted=False)


def test_mapping_of_named_columns_feeds_a_dataframe_model(tmp_path: Path) -> None:
    import pandas as pd
    from sklearn.linear_model import LinearRegression

    frame = pd.DataFrame({"a": [0.0, 1.0, 2.0, 3.0], "b": [1.0, 0.0, 1.0, 0.0]})
    model = LinearRegression().fit(frame, 2 * frame["a"] + frame["b"])
    path, _ = serialize_model(model, tmp_path)

    predictor = SklearnFlavor().load(path, trusted=False)

    batch = {"b": np.array([1.0]), "a": np.array([3.0])}
    np.testing.assert_allclose(predictor.predict(batch), [7.0])


def test_tree_models_need_trust_because_skops_does_not_trust_their_tree_type(
    tmp_path: Path, cancer: Data
) -> None:
    from sklearn.tree import DecisionTreeClassifier

    features, target = cancer
    path, _ = serialize_model(DecisionTreeClassifier(max_depth=2).fit(features, target), tmp_path)

    with pytest.raises(Unprocessable, match=r"sklearn\.tree\._tree\.Tree"):
        SklearnFlavor().inspect(path, trusted=False)
    assert SklearnFlavor().inspect(path, trusted=True) is not None
