"""``vision.cnn``: trains on digits through a job (accuracy >= 0.95), serves ONNX over /v2."""

from __future__ import annotations

import httpx
import numpy as np
import pytest

from zoo.conftest import bad_params, infer, serve, train
from zoo.torch_jobs import epoch_metric

pytestmark = pytest.mark.torch


def test_the_cnn_reads_digits_and_serves_them(api: httpx.Client) -> None:
    from sklearn.datasets import load_digits

    job = train(api, "vision.cnn", {"epochs": 12})
    assert job["dataset"] == "digits", "the entry's default dataset"
    outputs = job["outputs"]
    assert outputs["accuracy"] >= 0.95, outputs
    accuracy = epoch_metric(api, job["id"], "accuracy")
    assert [m["step"] for m in accuracy] == list(range(1, 13))
    assert accuracy[-1]["value"] > accuracy[0]["value"] or accuracy[0]["value"] >= 0.95
    version = api.get(f"/api/v1/models/{outputs['model']}/versions/{outputs['model_version']}")
    body = version.json()
    assert body["flavor"] == "onnx"
    assert body["tags"] == {"task": "classification", "entry": "vision.cnn"}
    assert body["signature"]["inputs"] == [{"name": "input", "datatype": "FP32", "shape": [-1, 64]}]

    digits = load_digits()
    rows = digits.data[-30:].astype(np.float32)  # the data set's last rows, pixels 0..16
    name = serve(api, job, "digits-cnn")
    tensor = {"name": "input", "datatype": "FP32", "shape": [30, 64], "data": rows.ravel().tolist()}
    answer = infer(api, name, [tensor])
    assert answer["label"]["shape"] == [30]
    assert answer["probabilities"]["shape"] == [30, 10]
    labels = np.asarray(answer["label"]["data"])
    assert (labels == digits.target[-30:]).mean() >= 0.9
    probabilities = np.asarray(answer["probabilities"]["data"]).reshape(30, 10)
    assert np.array_equal(probabilities.argmax(axis=1), labels)


def test_bad_params_are_refused_naming_the_field(api: httpx.Client) -> None:
    cases = [
        ({"learning_rate": -1}, "params.learning_rate"),
        ({"channels": [8, 0]}, "params.channels.1"),
        ({"hidden_size": 0}, "params.hidden_size"),
        ({"kernel": 5}, "params.kernel"),
    ]
    for params, field in cases:
        assert field in bad_params(api, "vision.cnn", params), params
