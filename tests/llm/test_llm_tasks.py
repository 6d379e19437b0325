"""The transformers flavor's other pipeline tasks served over OIP: token classification and
fill-mask (tiny BERTs with a locally trained WordPiece tokenizer) and image classification
(a tiny ViT with its image processor config). Each answer is checked against transformers'
own pipeline or processor on the same model; bad images are 400s.

One server for the module (SQLite); nothing downloads.
"""

from __future__ import annotations

import io
import json
import struct
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from tests.conftest import LiveServer, free_port, start_server
from tests.llm.hf_models import IMAGE_LABELS, tiny_bert, tiny_vit, zip_dir

from aimass.config import Settings

pytest.importorskip("transformers")
pytest.importorskip("PIL")
pytestmark = [pytest.mark.slow, pytest.mark.backend("sqlite")]

TEXTS = [
    "Registries keep every version of every model.",
    "The quick brown fox jumps over the lazy dog in Offline.",
]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    home = tmp_path_factory.mktemp("llm-tasks")
    settings = Settings(
        home=home / "home", artifacts=str(home / "artifacts"), port=free_port(),
        tune_gc=False, jobs=False, reconcile_interval=0.1,
    )  # fmt: skip
    yield from start_server(settings)


@pytest.fixture(scope="module")
def models(server: LiveServer, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The three tiny models, uploaded (tasks detected from their configs) and deployed."""
    import aimass

    folder = tmp_path_factory.mktemp("tiny")
    folders = {
        "ner": tiny_bert(folder / "ner", "token-classification"),
        "mlm": tiny_bert(folder / "mlm", "fill-mask"),
        "vit": tiny_vit(folder / "vit"),
    }
    with aimass.Client(url=server.url, token=server.admin_token) as client:
        for name, path in folders.items():
            version = client.models.upload(name, zip_dir(path, folder / f"{name}.zip"))
            assert version.flavor == "transformers"
            client.deployments.create(name, version=version.version)
        for name in folders:
            client.deployments.wait_ready(name, timeout=120)
    return folders


def _infer(server: LiveServer, name: str, tensor: str, data: list[Any]) -> httpx.Response:
    body = {"inputs": [{"name": tensor, "datatype": "BYTES", "shape": [len(data)], "data": data}]}
    return httpx.post(
        f"{server.url}/v2/models/{name}/infer", json=body, timeout=60,
        headers={"Authorization": f"Bearer {server.admin_token}"},
    )  # fmt: skip


def _outputs(answer: httpx.Response) -> dict[str, dict[str, Any]]:
    assert answer.status_code == 200, answer.text
    return {out["name"]: out for out in answer.json()["outputs"]}


def test_token_classification_answers_the_pipelines_entities(
    server: LiveServer, models: dict[str, Path]
) -> None:
    from transformers import pipeline

    outputs = _outputs(_infer(server, "ner", "text", TEXTS))
    served = [json.loads(row) for row in outputs["entities"]["data"]]
    reference = pipeline("token-classification", model=str(models["ner"]),
                         aggregation_strategy="first")(TEXTS)  # fmt: skip
    assert len(served) == len(TEXTS) and any(served)
    for text, mine, theirs in zip(TEXTS, served, reference, strict=True):
        assert [(e["label"], e["start"], e["end"]) for e in mine] == [
            (e["entity_group"], e["start"], e["end"]) for e in theirs
        ]
        for entity, expected in zip(mine, theirs, strict=True):
            assert entity["word"] == text[entity["start"] : entity["end"]]
            assert entity["score"] == pytest.approx(float(expected["score"]), abs=1e-4)


def test_fill_mask_answers_the_pipelines_top_tokens(
    server: LiveServer, models: dict[str, Path]
) -> None:
    from transformers import pipeline

    masked = ["The quick brown [MASK] jumps.", "Offline loading never [MASK] the network."]
    outputs = _outputs(_infer(server, "mlm", "text", masked))
    assert outputs["tokens"]["shape"] == [2, 5] and outputs["scores"]["shape"] == [2, 5]
    tokens = np.asarray(outputs["tokens"]["data"], dtype=object).reshape(2, 5)
    scores = np.asarray(outputs["scores"]["data"], dtype=np.float32).reshape(2, 5)
    reference = pipeline("fill-mask", model=str(models["mlm"]), top_k=5)(masked)
    for row, expected in enumerate(reference):
        assert list(tokens[row]) == [r["token_str"] for r in expected]
        assert scores[row] == pytest.approx([r["score"] for r in expected], abs=1e-5)

    answer = _infer(server, "mlm", "text", ["no mask in this text"])
    assert answer.status_code == 400 and "exactly one" in answer.text


def _png(width: int, height: int, seed: int) -> bytes:
    from PIL import Image

    pixels = np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, format="PNG")
    return out.getvalue()


def _bomb(side: int = 100_000) -> bytes:
    """A 100-byte PNG declaring a ``side`` x ``side`` canvas (10 gigapixels)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    header = struct.pack(">IIBBBBB", side, side, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 64)
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")
    )


def test_image_classification_answers_the_processor_and_model(
    server: LiveServer, models: dict[str, Path]
) -> None:
    import base64

    import torch
    import tritonclient.http
    from PIL import Image
    from transformers import ViTForImageClassification
    from transformers.models.vit.image_processing_pil_vit import ViTImageProcessorPil

    images = [_png(40, 50, 0), _png(32, 32, 1)]
    processor = ViTImageProcessorPil.from_pretrained(models["vit"])
    model = ViTForImageClassification.from_pretrained(models["vit"]).eval()
    pixels = processor([Image.open(io.BytesIO(i)) for i in images], return_tensors="pt")
    with torch.inference_mode():
        expected = torch.softmax(model(**pixels).logits, dim=-1).numpy()
    labels = [IMAGE_LABELS[i] for i in expected.argmax(axis=1)]

    # Raw bytes as binary tensors (tritonclient), and base64 text in a JSON request.
    host = server.url.removeprefix("http://")
    triton = tritonclient.http.InferenceServerClient(url=host)
    tensor = tritonclient.http.InferInput("image", [2], "BYTES")
    tensor.set_data_from_numpy(np.array(images, dtype=object), binary_data=True)
    auth = {"Authorization": f"Bearer {server.admin_token}"}
    result = triton.infer("vit", [tensor], headers=auth)
    assert result.as_numpy("scores") == pytest.approx(expected, abs=1e-4)
    assert [bytes(x).decode() for x in result.as_numpy("label")] == labels
    outputs = _outputs(
        _infer(server, "vit", "image", [base64.b64encode(i).decode() for i in images])
    )
    scores = np.asarray(outputs["scores"]["data"], dtype=np.float32).reshape(2, 3)
    assert scores == pytest.approx(expected, abs=1e-4)
    assert outputs["label"]["data"] == labels

    bomb = _infer(server, "vit", "image", [base64.b64encode(_bomb()).decode()])
    assert bomb.status_code == 400 and "decompression bomb" in bomb.text
    junk = _infer(server, "vit", "image", [base64.b64encode(b"not an image").decode()])
    assert junk.status_code == 400 and "PNG or JPEG" in junk.text


@pytest.mark.parametrize(
    ("architecture", "named", "task"),
    [
        ("BertForTokenClassification", None, "token-classification"),
        ("BertForMaskedLM", None, "fill-mask"),
        ("ViTForImageClassification", None, "image-classification"),
        ("BertForMaskedLM", "feature-extraction", "feature-extraction"),  # given wins
    ],
)
def test_the_task_comes_from_the_architecture_or_aimass_json(
    architecture: str, named: str | None, task: str
) -> None:
    from aimass.flavors._hf_files import ModelDirectory
    from aimass.flavors.transformers import detect_task

    files = {"aimass.json": {"task": named}} if named else {}
    directory = ModelDirectory("", [], {"architectures": [architecture]}, files)
    assert detect_task(directory) == task
