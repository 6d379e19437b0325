"""Classical entries: scikit-learn models, and XGBoost / LightGBM from the ``zoo`` extra.

Each trains on a table (features, then the label column; the last column unless
``target`` says), scores a held-out validation share, and registers an ONNX
model taking ``input`` FP32 [-1, features]. Classifiers answer ``label`` and
``probabilities``; regressors ``variable``; k-means ``label`` (the cluster)
and ``scores`` (the distance to each centre).
Iterative models log their validation metrics per iteration (trees, boosting
rounds); the others once, at step 1.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from aimass.plugins.columns import Columns
from aimass.plugins.entries import Entry
from aimass.plugins.needs import Needs
from aimass.preprocessing.pipeline import known_cleaners
from aimass.zoo._classical_fit import (
    fit_hist_gradient_boosting,
    fit_lightgbm,
    fit_logistic_regression,
    fit_random_forest,
    fit_ridge,
    fit_xgboost,
)
from aimass.zoo._extras import BOOSTING_LIGHTGBM, BOOSTING_XGBOOST

if TYPE_CHECKING:
    from collections.abc import Callable

    from aimass.zoo._supervised import Log, Split

__all__ = ["ENTRIES"]


class _Params(BaseModel):
    model_config = ConfigDict(extra="forbid")

    target: str | None = Field(default=None, description="label column (default: the last)")
    test_size: float = Field(default=0.25, gt=0, lt=1, description="validation share")
    seed: int = Field(default=0, ge=0)
    model_name: str | None = Field(
        default=None, min_length=1, max_length=128, description="default: <dataset>-<model>"
    )
    cleaners: Annotated[list[str], AfterValidator(known_cleaners)] = Field(
        default_factory=list,
        max_length=16,
        description="data cleaners (plugins) applied to the dataset before training, in order",
    )


class LogisticRegressionParams(_Params):
    """``classical.logistic_regression``: standardized features, L2-penalized."""

    C: float = Field(default=1.0, gt=0, le=1e6, description="inverse regularization strength")
    max_iter: int = Field(default=200, ge=1, le=100_000)


class RandomForestParams(_Params):
    """``classical.random_forest``: grown ``trees_per_step`` trees at a time."""

    n_estimators: int = Field(default=100, ge=1, le=10_000)
    trees_per_step: int = Field(default=10, ge=1, le=10_000, description="trees per logged step")
    max_depth: int | None = Field(default=None, ge=1, le=1000)
    min_samples_leaf: int = Field(default=1, ge=1, le=100_000)


class HistGradientBoostingParams(_Params):
    """``classical.hist_gradient_boosting``: validation metrics logged per boosting round."""

    max_iter: int = Field(default=100, ge=1, le=10_000, description="boosting rounds")
    learning_rate: float = Field(default=0.1, gt=0, le=10)
    max_leaf_nodes: int = Field(default=31, ge=2, le=65_536)
    l2_regularization: float = Field(default=0.0, ge=0, le=1e6)


class RidgeParams(_Params):
    """``classical.ridge``: standardized features, L2-penalized least squares."""

    alpha: float = Field(default=1.0, ge=0, le=1e9, description="L2 penalty (0: plain OLS)")


class KMeansParams(BaseModel):
    """``classical.kmeans``: clusters the feature columns; a label column is left out."""

    model_config = ConfigDict(extra="forbid")

    n_clusters: int = Field(default=3, ge=2, le=10_000)
    n_init: int = Field(default=10, ge=1, le=1000, description="restarts; the best is kept")
    max_iter: int = Field(default=300, ge=1, le=100_000)
    target: str | None = Field(
        default="target", description="a label column to leave out and score against, if present"
    )
    seed: int = Field(default=0, ge=0)
    model_name: str | None = Field(default=None, min_length=1, max_length=128)


class BoostingParams(_Params):
    """``classical.lightgbm`` / ``classical.xgboost``: validation metrics per round."""

    n_estimators: int = Field(default=100, ge=1, le=10_000, description="boosting rounds")
    learning_rate: float = Field(default=0.1, gt=0, le=10)
    max_depth: int = Field(default=6, ge=1, le=64)


def _signature(features: int, classes: int | None) -> dict[str, Any]:
    inputs = [{"name": "input", "datatype": "FP32", "shape": [-1, features]}]
    if classes is None:
        outputs = [{"name": "variable", "datatype": "FP32", "shape": [-1, 1]}]
    else:
        outputs = [
            {"name": "label", "datatype": "INT64", "shape": [-1]},
            {"name": "probabilities", "datatype": "FP32", "shape": [-1, classes]},
        ]
    return {"inputs": inputs, "outputs": outputs}


def _example(row: list[float]) -> dict[str, Any]:
    return {"inputs": [{"name": "input", "datatype": "FP32", "shape": [1, len(row)], "data": row}]}


_IRIS = [5.1, 3.5, 1.4, 0.2]
_WINE = [14.23, 1.71, 2.43, 15.6, 127.0, 2.8, 3.06, 0.28, 2.29, 5.64, 1.04, 3.92, 1065.0]
_CANCER = [
    *(17.99, 10.38, 122.8, 1001.0, 0.1184, 0.2776, 0.3001, 0.1471, 0.2419, 0.07871),
    *(1.095, 0.9053, 8.589, 153.4, 0.006399, 0.04904, 0.05373, 0.01587, 0.03003, 0.006193),
    *(25.38, 17.33, 184.6, 2019.0, 0.1622, 0.6656, 0.7119, 0.2654, 0.4601, 0.1189),
]
_DIABETES = [0.03808, 0.05068, 0.0617, 0.02187, -0.04422, -0.03482, -0.0434, -0.002592]
_DIABETES += [0.01991, -0.01765]


def _entry(
    name: str,
    description: str,
    params: type[BaseModel],
    task: str,
    dataset: str,
    row: list[float],
    classes: int | None,
    needs: Needs | None = None,
) -> Entry:
    signature = _signature(len(row), classes)
    if task == "clustering":  # each row's cluster, and its distance to every centre
        signature["outputs"] = [
            {"name": "label", "datatype": "INT64", "shape": [-1]},
            {"name": "scores", "datatype": "FP32", "shape": [-1, 3]},
        ]
    return Entry(
        name=name,
        kinds=frozenset({"train"}),
        target=f"aimass.zoo.classical:train_{name.split('.')[1]}",
        description=description,
        params=params,
        needs_dataset=True,
        task=task,
        family="classical",
        default_dataset=dataset,
        exports=("onnx",),
        signature=signature,
        example_request=_example(row),
        needs=needs,
        # k-means leaves its label column out if present; the others learn it.
        columns=None if task == "clustering" else Columns(),
    )


ENTRIES: list[Entry] = [
    _entry(
        "classical.logistic_regression",
        "Logistic regression on standardized features (scikit-learn); ONNX.",
        LogisticRegressionParams,
        "classification",
        "iris",
        _IRIS,
        3,
    ),
    _entry(
        "classical.random_forest",
        "Random forest (scikit-learn), grown a few trees at a time with the validation "
        "accuracy logged after each; ONNX.",
        RandomForestParams,
        "classification",
        "wine",
        _WINE,
        3,
    ),
    _entry(
        "classical.hist_gradient_boosting",
        "Histogram gradient boosting (scikit-learn), validation accuracy, log loss and ROC AUC "
        "logged per boosting round; ONNX.",
        HistGradientBoostingParams,
        "classification",
        "breast_cancer",
        _CANCER,
        2,
    ),
    _entry(
        "classical.ridge",
        "Ridge (L2-penalized linear) regression on standardized features (scikit-learn); ONNX.",
        RidgeParams,
        "regression",
        "diabetes",
        _DIABETES,
        None,
    ),
    _entry(
        "classical.kmeans",
        "k-means clustering of standardized features (scikit-learn), the label column left "
        "out; reports inertia, silhouette and, against the labels, adjusted Rand; ONNX.",
        KMeansParams,
        "clustering",
        "iris",
        _IRIS,
        None,
    ),
]
# The gradient-boosting libraries come with the zoo extra; without it these two are listed
# as unavailable, with the install command, and refused at submit.
ENTRIES += [
    _entry(
        "classical.lightgbm",
        "LightGBM gradient-boosted trees (the zoo extra), validation log loss and ROC AUC "
        "per round; ONNX through onnxmltools.",
        BoostingParams,
        "classification",
        "breast_cancer",
        _CANCER,
        2,
        BOOSTING_LIGHTGBM,
    ),
    _entry(
        "classical.xgboost",
        "XGBoost gradient-boosted trees (the zoo extra), validation log loss and ROC AUC "
        "per round; ONNX through onnxmltools.",
        BoostingParams,
        "classification",
        "breast_cancer",
        _CANCER,
        2,
        BOOSTING_XGBOOST,
    ),
]


def _supervised(
    params: dict[str, Any], name: str, task: str, fit: Callable[[dict[str, Any], Split, Log], Any]
) -> dict[str, Any]:
    from aimass.zoo import _onnx
    from aimass.zoo._supervised import run_supervised

    export = {
        "classical.lightgbm": _onnx.lightgbm_to_onnx,
        "classical.xgboost": _onnx.xgboost_to_onnx,
    }.get(name, _onnx.sklearn_to_onnx)
    return run_supervised(
        params, entry=name, task=task, fit=lambda s, log: fit(params, s, log), export=export
    )


def train_logistic_regression(params: dict[str, Any]) -> dict[str, Any]:
    """Train ``classical.logistic_regression`` in the job's process."""
    return _supervised(
        params, "classical.logistic_regression", "classification", fit_logistic_regression
    )


def train_random_forest(params: dict[str, Any]) -> dict[str, Any]:
    """Train ``classical.random_forest`` in the job's process."""
    return _supervised(params, "classical.random_forest", "classification", fit_random_forest)


def train_hist_gradient_boosting(params: dict[str, Any]) -> dict[str, Any]:
    """Train ``classical.hist_gradient_boosting`` in the job's process."""
    return _supervised(
        params, "classical.hist_gradient_boosting", "classification", fit_hist_gradient_boosting
    )


def train_ridge(params: dict[str, Any]) -> dict[str, Any]:
    """Train ``classical.ridge`` in the job's process."""
    return _supervised(params, "classical.ridge", "regression", fit_ridge)


def train_lightgbm(params: dict[str, Any]) -> dict[str, Any]:
    """Train ``classical.lightgbm`` in the job's process."""
    return _supervised(params, "classical.lightgbm", "classification", fit_lightgbm)


def train_xgboost(params: dict[str, Any]) -> dict[str, Any]:
    """Train ``classical.xgboost`` in the job's process."""
    return _supervised(params, "classical.xgboost", "classification", fit_xgboost)


def train_kmeans(params: dict[str, Any]) -> dict[str, Any]:
    """Train ``classical.kmeans`` in the job's process."""
    from aimass.zoo._clustering import run_kmeans

    return run_kmeans(params)
