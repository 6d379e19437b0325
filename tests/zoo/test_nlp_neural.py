"""``nlp.embedding_bag``: trains on the generated text_topics set, serves raw strings over ONNX."""

from __future__ import annotations

from pathlib import Path

import httpx
import numpy as np
import pytest

from zoo.conftest import bad_params, evaluate, infer, serve, train
from zoo.torch_jobs import epoch_metric

pytestmark = pytest.mark.torch

#: Four topics: chance is 0.25; the classifier must be far above it.
ACCURACY_FLOOR = 0.8


def test_the_text_classifier_learns_topics_and_serves_raw_text(api: httpx.Client) -> None:
    job = train(api, "nlp.embedding_bag", {"epochs": 20})
    assert job["dataset"] == "text_topics", "the entry's default dataset"
    outputs = job["outputs"]
    assert outputs["accuracy"] >= ACCURACY_FLOOR, outputs
    assert outputs["vocabulary_size"] > 50
    assert len(epoch_metric(api, job["id"], "accuracy")) == 20
    version = api.get(f"/api/v1/models/{outputs['model']}/versions/{outputs['model_version']}")
    body = version.json()
    assert body["flavor"] == "onnx"
    assert body["signature"]["inputs"] == [{"name": "text", "datatype": "BYTES", "shape": [-1, 1]}]
    assert [o["name"] for o in body["signature"]["outputs"]] == ["label", "probabilities"]

    texts = [
        "The CHEF baked fresh bread and a spicy soup",
        "the striker scored against the goalkeeper in the final",
        "a freezing storm swept across the valley last night",
        "my laptop crashed after the software update",
        "",  # no token at all: the classes' prior from the output layer, still an answer
        "?!, ...",  # no token either: the same answer
    ]
    name = serve(api, job, "texts")
    answer = infer(
        api, name, [{"name": "text", "datatype": "BYTES", "shape": [6, 1], "data": texts}]
    )
    assert answer["label"]["shape"] == [6]
    assert answer["label"]["datatype"] == "BYTES"
    assert answer["probabilities"]["shape"] == [6, 4]
    probabilities = np.asarray(answer["probabilities"]["data"]).reshape(6, 4)
    assert np.allclose(probabilities.sum(axis=1), 1, atol=1e-5)
    assert answer["label"]["data"][:4] == ["cooking", "sports", "weather", "technology"]
    assert np.allclose(probabilities[4], probabilities[5], atol=1e-6)
    unknown = infer(
        api, name, [{"name": "text", "datatype": "BYTES", "shape": [1, 1], "data": ["zzz qqq"]}]
    )
    assert unknown["probabilities"]["shape"] == [1, 4], "words outside the vocabulary are fine"

    # The evaluate job feeds the text column to the model as strings, as serving does.
    metrics = evaluate(api, job, "text_topics")
    assert metrics["accuracy"] >= outputs["accuracy"] - 0.05, "all rows: mostly training ones"
    assert metrics["roc_auc"] > 0.9


def test_the_exported_text_front_end_tokenizes_as_training_does(tmp_path: Path) -> None:
    import torch

    from aimass.zoo._classify import probabilities_module
    from aimass.zoo._torch_export import check_export, export_classifier, tokenize
    from aimass.zoo.nlp_neural import _mean_embedding, build_vocabulary, encode

    texts = [
        "Don't STOP-me: 42times!",
        "ÉCOLE café, straße \uff12\uff13 ½",
        "a\tb\nc  \uff21\uff22 ab x_y",
        "",
        "?!",
    ]
    tokens = [tokenize(text) for text in texts]
    assert tokens[0] == ["don", "t", "stop", "me", "42times"]
    assert tokens[1] == ["École", "café", "straße", "\uff12\uff13", "½"], (
        "ASCII letters only are lowered"
    )
    vocabulary = build_vocabulary([*tokens[:2], ["ab", "x"]], min_count=1, limit=100)
    torch.manual_seed(0)
    body = torch.nn.Sequential(
        _mean_embedding(torch, len(vocabulary) + 2, 8), torch.nn.Linear(8, 3)
    )
    model = probabilities_module(torch, body).eval()
    ids = torch.from_numpy(encode(tokens, vocabulary))
    with torch.no_grad():
        probabilities = model(ids).numpy()
    classes = np.array(["a", "b", "c"])
    path = export_classifier(
        model, [ids[:2]], tmp_path / "m.onnx", "ids", [0, 1], classes, vocabulary
    )
    raw = np.array(texts, dtype=object).reshape(-1, 1)
    check_export(path, raw, classes[probabilities.argmax(axis=1)], probabilities)


def test_bad_params_are_refused_naming_the_field(api: httpx.Client) -> None:
    cases = [
        ({"learning_rate": 0}, "params.learning_rate"),
        ({"embedding_dim": 0}, "params.embedding_dim"),
        ({"min_count": "often"}, "params.min_count"),
        ({"tokenizer": "bpe"}, "params.tokenizer"),
    ]
    for params, field in cases:
        assert field in bad_params(api, "nlp.embedding_bag", params), params
