"""``tabular.mlp``: trains through a job on breast_cancer, resumes after kill -9, serves ONNX."""

from __future__ import annotations

import httpx
import numpy as np
import pandas as pd
import pytest

from zoo.conftest import bad_params, infer, serve, train
from zoo.torch_jobs import epoch_metric, kill_mid_training

pytestmark = pytest.mark.torch


def test_the_mlp_classifies_breast_cancer_and_serves_probabilities(api: httpx.Client) -> None:
    from sklearn.datasets import load_breast_cancer

    job = train(api, "tabular.mlp", {"epochs": 12})
    assert job["dataset"] == "breast_cancer", "the entry's default dataset"
    cancer: pd.DataFrame = load_breast_cancer(as_frame=True).frame
    outputs = job["outputs"]
    assert outputs["accuracy"] >= 0.9, outputs
    assert outputs["roc_auc"] >= 0.95, outputs
    steps = [m["step"] for m in epoch_metric(api, job["id"], "accuracy")]
    assert steps == list(range(1, 13))
    assert len(api.get(f"/api/v1/jobs/{job['id']}/checkpoints").json()) == 12
    version = api.get(f"/api/v1/models/{outputs['model']}/versions/{outputs['model_version']}")
    body = version.json()
    assert body["flavor"] == "onnx"
    assert body["tags"] == {"task": "classification", "entry": "tabular.mlp"}
    assert body["signature"]["inputs"] == [{"name": "input", "datatype": "FP32", "shape": [-1, 30]}]
    assert body["metrics"]["accuracy"] == outputs["accuracy"]

    rows = cancer.drop(columns=["target"]).to_numpy(dtype=np.float32)[:40]
    name = serve(api, job, "mlp")
    answer = infer(
        api,
        name,
        [
            {
                "name": "input",
                "datatype": "FP32",
                "shape": list(rows.shape),
                "data": rows.ravel().tolist(),
            }
        ],
    )
    assert answer["label"]["shape"] == [40]
    assert answer["probabilities"]["shape"] == [40, 2]
    probabilities = np.asarray(answer["probabilities"]["data"]).reshape(40, 2)
    assert np.allclose(probabilities.sum(axis=1), 1, atol=1e-5)
    labels = np.asarray(answer["label"]["data"])
    assert np.array_equal(labels, probabilities.argmax(axis=1))
    assert (labels == cancer["target"].to_numpy()[:40]).mean() >= 0.9


def test_a_killed_attempt_resumes_from_its_last_epoch(api: httpx.Client) -> None:
    whole = train(api, "tabular.mlp", {"epochs": 8, "model_name": "whole"})
    response = api.post(
        "/api/v1/jobs",
        json={
            "kind": "train",
            "entry": "tabular.mlp",
            "params": {"epochs": 8, "sleep_s": 0.4},
        },
    )
    assert response.status_code == 201, response.text
    job_id = response.json()["id"]
    done = kill_mid_training(api, job_id, after_epochs=2)
    assert done["state"] == "succeeded", done
    assert done["attempt"] == 2
    outputs = done["outputs"]
    assert outputs["start_2"] >= 2, "attempt 2 resumed from a checkpoint"
    assert outputs["resumed_from"] == outputs["start_2"]
    second = [m["step"] for m in epoch_metric(api, job_id, "accuracy") if m["attempt"] == 2]
    assert second == list(range(outputs["start_2"] + 1, 9))
    # Each epoch reseeds from (seed, epoch): the resumed run ends where an unbroken one does.
    final = epoch_metric(api, job_id, "loss")[-1]["value"]
    assert final == pytest.approx(epoch_metric(api, whole["id"], "loss")[-1]["value"], rel=1e-5)
    assert outputs["roc_auc"] == pytest.approx(whole["outputs"]["roc_auc"])
    assert "resuming from the checkpoint of epoch" in api.get(f"/api/v1/jobs/{job_id}/logs").text


BAD_PARAMS = [
    ({"learning_rate": -0.1}, "params.learning_rate"),
    ({"hidden_sizes": [16, 0]}, "params.hidden_sizes.1"),
    ({"epochs": "many"}, "params.epochs"),
    ({"layers": 3}, "params.layers"),
]


def test_bad_params_are_refused_naming_the_field(api: httpx.Client) -> None:
    for params, field in BAD_PARAMS:
        assert field in bad_params(api, "tabular.mlp", params), params
