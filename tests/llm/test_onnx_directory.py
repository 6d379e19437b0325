"""A transformers directory whose weights are an ONNX graph (``"runtime": "onnx"``): what is
refused at upload, checked without a server (the flavor's inspect, as the upload runs it)."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import pytest

from aimass.errors import Unprocessable
from aimass.flavors.transformers import TransformersFlavor

pytest.importorskip("tokenizers")
onnx = pytest.importorskip("onnx")

CONFIG = {"architectures": ["BertModel"], "hidden_size": 4}


def _graph(domain: str = "") -> bytes:
    helper = onnx.helper
    node = helper.make_node("Identity", ["input_ids"], ["embedding"], domain=domain)
    graph = helper.make_graph(
        [node],
        "g",
        [helper.make_tensor_value_info("input_ids", onnx.TensorProto.INT64, ["b", "t"])],
        [helper.make_tensor_value_info("embedding", onnx.TensorProto.INT64, ["b", "t"])],
    )
    opsets = [helper.make_opsetid("", 17)] + ([helper.make_opsetid(domain, 1)] if domain else [])
    return bytes(helper.make_model(graph, opset_imports=opsets).SerializeToString())


def _archive(tmp_path: Path, members: dict[str, bytes]) -> Path:
    path = tmp_path / "model.zip"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("config.json", json.dumps(CONFIG))
        archive.writestr("tokenizer.json", "{}")
        for name, data in members.items():
            archive.writestr(name, data)
    return path


def _refusal(path: Path) -> str:
    with pytest.raises(Unprocessable) as caught:
        TransformersFlavor().inspect(path, trusted=False)
    return caught.value.message


def test_an_onnx_graph_needs_the_onnx_runtime_named_in_aimass_json(tmp_path: Path) -> None:
    message = _refusal(_archive(tmp_path, {"model.onnx": _graph()}))
    assert "only safetensors weights" in message and '"runtime": "onnx"' in message


def test_an_onnx_directory_with_a_custom_operator_is_refused(tmp_path: Path) -> None:
    settings = json.dumps({"task": "feature-extraction", "runtime": "onnx"}).encode()
    path = _archive(tmp_path, {"model.onnx": _graph("evil.ops"), "aimass.json": settings})
    assert "custom domain 'evil.ops'" in _refusal(path)


def test_an_onnx_directory_holds_one_graph_named_model_onnx(tmp_path: Path) -> None:
    settings = json.dumps({"task": "feature-extraction", "runtime": "onnx"}).encode()
    path = _archive(tmp_path, {"other.onnx": _graph(), "aimass.json": settings})
    assert "'model.onnx'" in _refusal(path)


def test_an_onnx_directory_serves_no_generation(tmp_path: Path) -> None:
    settings = json.dumps({"task": "text-generation", "runtime": "onnx"}).encode()
    path = _archive(tmp_path, {"model.onnx": _graph(), "aimass.json": settings})
    assert "not 'text-generation'" in _refusal(path)


def test_a_valid_onnx_directory_gets_the_task_signature(tmp_path: Path) -> None:
    settings = json.dumps({"task": "feature-extraction", "runtime": "onnx"}).encode()
    path = _archive(tmp_path, {"model.onnx": _graph(), "aimass.json": settings})
    signature = TransformersFlavor().inspect(path, trusted=False)
    assert signature is not None
    assert [s.name for s in signature.inputs] == ["text"]
    assert signature.outputs[0].name == "embedding" and signature.outputs[0].shape == [-1, 4]
