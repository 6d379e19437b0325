"""Classical entries: each trains through a job on its built-in dataset, meets its quality
floor, logs its metrics per iteration, registers ONNX, and answers through /v2 infer."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx
import numpy as np
import pytest

from zoo.conftest import bad_params, evaluate, infer, serve, train


@dataclass(frozen=True)
class Case:
    entry: str
    params: dict[str, Any]
    metric: str
    floor: float
    features: int
    #: The outputs' names and their second dimension (None: 1-D).
    outputs: dict[str, int | None]
    steps: int


CASES = [
    Case(
        "classical.logistic_regression",
        {},
        "accuracy",
        0.9,
        4,
        {"label": None, "probabilities": 3},
        1,
    ),
    Case(
        "classical.random_forest",
        {"n_estimators": 30, "trees_per_step": 10},
        "accuracy",
        0.9,
        13,
        {"label": None, "probabilities": 3},
        3,
    ),
    Case(
        "classical.hist_gradient_boosting",
        {"max_iter": 40},
        "roc_auc",
        0.95,
        30,
        {"label": None, "probabilities": 2},
        40,
    ),
    Case("classical.ridge", {}, "r2", 0.3, 10, {"variable": 1}, 1),
    Case("classical.kmeans", {}, "adjusted_rand", 0.5, 4, {"label": None, "scores": 3}, 1),
    Case(
        "classical.lightgbm",
        {"n_estimators": 30},
        "roc_auc",
        0.95,
        30,
        {"label": None, "probabilities": 2},
        30,
    ),
    Case(
        "classical.xgboost",
        {"n_estimators": 30},
        "roc_auc",
        0.95,
        30,
        {"label": None, "probabilities": 2},
        30,
    ),
]


def _rows(api: httpx.Client, dataset: str, count: int) -> np.ndarray[Any, Any]:
    """The first rows' features of the project's copy of a built-in dataset."""
    import io

    import pandas as pd

    body = api.get(f"/api/v1/datasets/{dataset}/versions/1/download")
    assert body.status_code == 200, body.text
    frame = pd.read_csv(io.BytesIO(body.content))
    return frame.drop(columns=["target"]).to_numpy(dtype=np.float32)[:count]


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.entry)
def test_entry_trains_on_its_builtin_dataset_and_serves(api: httpx.Client, case: Case) -> None:
    entry = api.get(f"/api/v1/zoo/{case.entry}").json()
    job = train(api, case.entry, case.params)
    outputs = job["outputs"]
    assert job["dataset"] == entry["default_dataset"]
    assert outputs[case.metric] >= case.floor, outputs
    steps = api.get(f"/api/v1/jobs/{job['id']}/metrics", params={"name": case.metric}).json()
    assert [m["step"] for m in steps] == list(range(1, case.steps + 1))
    version = api.get(f"/api/v1/models/{outputs['model']}/versions/{outputs['model_version']}")
    body = version.json()
    assert body["flavor"] == "onnx"
    assert body["tags"] == {"task": entry["task"], "entry": case.entry}
    assert body["metrics"][case.metric] == pytest.approx(outputs[case.metric])
    assert body["signature"]["inputs"] == [
        {"name": "input", "datatype": "FP32", "shape": [-1, case.features]}
    ]

    rows = _rows(api, entry["default_dataset"], 5)
    name = serve(api, job, case.entry.split(".")[1].replace("_", "-"))
    answer = infer(
        api,
        name,
        [
            {
                "name": "input",
                "datatype": "FP32",
                "shape": [5, case.features],
                "data": rows.ravel().tolist(),
            }
        ],
    )
    assert set(answer) == set(case.outputs)
    for output, width in case.outputs.items():
        assert answer[output]["shape"] == ([5] if width is None else [5, width])
    example = api.post(f"/v2/models/{name}/infer", json=entry["example_request"])
    assert example.status_code == 200, example.text


def test_bad_params_are_refused_naming_the_field(api: httpx.Client) -> None:
    bad = [
        ("classical.logistic_regression", {"C": -1.0}, "params.C", "greater than 0"),
        ("classical.logistic_regression", {"max_iter": "many"}, "params.max_iter", "integer"),
        ("classical.logistic_regression", {"learning_rate": 0.1}, "params.learning_rate", "Extra"),
        (
            "classical.hist_gradient_boosting",
            {"learning_rate": -0.1},
            "params.learning_rate",
            "greater than 0",
        ),
    ]
    for entry, params, field, words in bad:
        message = bad_params(api, entry, params)
        assert field in message and words in message, message
    assert api.get("/api/v1/jobs").json() == []
    assert api.get("/api/v1/datasets").json() == [], "a refused job materializes no dataset"


def test_evaluation_of_a_clustering_version_reports_clustering_metrics(
    api: httpx.Client,
) -> None:
    job = train(api, "classical.kmeans")
    outputs = job["outputs"]
    metrics = evaluate(api, job, "iris")
    assert metrics["adjusted_rand"] == pytest.approx(outputs["adjusted_rand"])
    reports = api.get(f"/api/v1/models/{outputs['model']}/versions/1/evaluations").json()
    assert [r["task"] for r in reports] == ["clustering"]
    assert {"silhouette", "adjusted_rand", "nmi"} <= set(reports[0]["metrics"])
