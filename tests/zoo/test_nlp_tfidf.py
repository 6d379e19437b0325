"""``nlp.tfidf_linear``: trains on the generated text set, serves raw strings over /v2 infer."""

from __future__ import annotations

import struct

import httpx
import numpy as np

from jobs.conftest import wait_for
from zoo.conftest import bad_params, infer, serve, train

TOPICS = ["cooking", "sports", "technology", "weather"]


def _binary_bytes_request(texts: list[str]) -> tuple[bytes, int]:
    """A binary-tensor infer request (as tritonclient sends BYTES); the body and header length."""
    raw = b"".join(struct.pack("<I", len(t.encode())) + t.encode() for t in texts)
    header = (
        b'{"inputs":[{"name":"text","datatype":"BYTES","shape":[%d,1],'
        b'"parameters":{"binary_data_size":%d}}]}' % (len(texts), len(raw))
    )
    return header + raw, len(header)


def test_tfidf_linear_classifies_the_text_set_and_serves_strings(api: httpx.Client) -> None:
    job = train(api, "nlp.tfidf_linear", {"ngram_max": 2})
    outputs = job["outputs"]
    assert job["dataset"] == "text_topics"
    assert outputs["accuracy"] >= 0.85, outputs
    assert outputs["validation_rows"] == 120
    version = api.get(f"/api/v1/models/{outputs['model']}/versions/{outputs['model_version']}")
    body = version.json()
    assert body["flavor"] == "onnx"
    assert body["tags"] == {"task": "classification", "entry": "nlp.tfidf_linear"}
    assert body["signature"]["inputs"] == [{"name": "text", "datatype": "BYTES", "shape": [-1, 1]}]

    name = serve(api, job, "topics")
    texts = [
        "The striker SCORED twice in the final!",
        "my new laptop installed the software update",
        "the chef baked fresh bread with garlic",
        "a cold storm swept across the coast",
    ]
    answer = infer(
        api, name, [{"name": "text", "datatype": "BYTES", "shape": [4, 1], "data": texts}]
    )
    assert answer["label"]["datatype"] == "BYTES" and answer["label"]["shape"] == [4]
    assert answer["label"]["data"] == ["sports", "technology", "cooking", "weather"]
    probabilities = np.asarray(answer["probabilities"]["data"]).reshape(4, 4)
    assert np.allclose(probabilities.sum(axis=1), 1, atol=1e-5)

    content, header = _binary_bytes_request(texts[:2])
    binary = api.post(
        f"/v2/models/{name}/infer",
        content=content,
        headers={"Inference-Header-Content-Length": str(header)},
    )
    assert binary.status_code == 200, binary.text
    first = binary.json()["outputs"][0]
    assert first["name"] == "label" and first["data"] == ["sports", "technology"]

    numbers = api.post(
        f"/v2/models/{name}/infer",
        json={"inputs": [{"name": "text", "datatype": "FP32", "shape": [1, 1], "data": [1.0]}]},
    )
    assert numbers.status_code == 400 and "BYTES" in numbers.text

    evaluation = api.post(
        "/api/v1/jobs",
        json={
            "kind": "evaluate",
            "entry": "evaluate",
            "dataset": "text_topics",
            "params": {"model": outputs["model"]},
        },
    ).json()
    done = wait_for(api, evaluation["id"])
    assert done["state"] == "succeeded", api.get(f"/api/v1/jobs/{evaluation['id']}/logs").text
    assert done["outputs"]["metrics"]["accuracy"] >= 0.85
    assert "roc_auc" in done["outputs"]["metrics"]


def test_bad_text_params_are_refused_naming_the_field(api: httpx.Client) -> None:
    assert "params.ngram_max" in bad_params(api, "nlp.tfidf_linear", {"ngram_max": 0})
    assert "params.C" in bad_params(api, "nlp.tfidf_linear", {"C": "strong"})
    assert "params.vocabulary" in bad_params(api, "nlp.tfidf_linear", {"vocabulary": ["a"]})
