"""Flavors load onto the device they are given (``aimass.devices``) and say which.

Where torch or onnxruntime sees no CUDA device (this machine: a CPU-only torch, no
driver), a model loaded inside ``assigned_gpus`` runs on the CPU, answers as it does
outside, and reports ``device == "cpu"``. On a machine whose torch sees a GPU the same
tests expect ``cuda:0`` and the same answers within float tolerance.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from tests.flavors.test_onnx_mapped import mlp
from tests.llm.hf_models import SENTENCES, minilm_dir, tiny_bert, tiny_gpt2, zip_dir
from tests.tests_support import tiny_torchscript

from aimass.devices import assigned_gpus, current_gpus, detect_gpus, onnx_providers, torch_device
from aimass.flavors._onnx_mapped import MODEL, mapped_folder
from aimass.flavors.onnx import OnnxFlavor
from aimass.flavors.torchscript import TorchPickleFlavor, TorchScriptFlavor
from aimass.flavors.transformers import TransformersFlavor

TEXTS = np.array(SENTENCES[:3], dtype=object)


def _torch_gpu() -> str:
    """The device a model given GPU "0" should report with this machine's torch."""
    torch = pytest.importorskip("torch")
    return "cuda:0" if torch.cuda.is_available() else "cpu"


def _onnx_gpu() -> str:
    """The device an ONNX model given GPU "0" should report with this onnxruntime."""
    import onnxruntime as ort

    return "cuda:0" if "CUDAExecutionProvider" in ort.get_available_providers() else "cpu"


def test_detect_gpus_reads_the_declared_gpus() -> None:
    assert detect_gpus("0,1") == ["0", "1"]
    assert detect_gpus(" 2 , 3 ,") == ["2", "3"]
    assert detect_gpus("none") == []
    assert detect_gpus("") == []


def test_without_an_assignment_torch_and_onnxruntime_get_the_cpu() -> None:
    import onnxruntime as ort

    torch = pytest.importorskip("torch")
    assert current_gpus() == ()
    assert torch_device(torch) == "cpu"
    assert onnx_providers(ort) == ["CPUExecutionProvider"]
    with assigned_gpus(["0"]):
        assert current_gpus() == ("0",)
        assert torch_device(torch) == _torch_gpu()
        with assigned_gpus([]):  # an inner load without GPUs
            assert torch_device(torch) == "cpu"
    assert current_gpus() == ()


def test_a_gpu_torch_does_not_see_is_the_cpu() -> None:
    torch = pytest.importorskip("torch")
    with assigned_gpus([str(torch.cuda.device_count())]):  # one past the last it sees
        assert torch_device(torch) == "cpu"


@pytest.mark.torch
def test_torchscript_on_its_assigned_gpu_answers_as_on_the_cpu(tmp_path: Path) -> None:
    path = tiny_torchscript(tmp_path / "linear.pt")
    batch = np.random.default_rng(0).normal(size=(6, 3)).astype(np.float32)
    on_cpu = TorchScriptFlavor().load_in_process(path, trusted=False)
    with assigned_gpus(["0"]):
        given = TorchScriptFlavor().load_in_process(path, trusted=False)

    assert on_cpu.device == "cpu"
    assert given.device == _torch_gpu()
    assert next(given.module.parameters()).device.type == given.device.split(":")[0]
    np.testing.assert_allclose(given.predict(batch), on_cpu.predict(batch), atol=1e-5)
    assert given.predict(batch).shape == (6, 2)
    assert set(given.predict_named(batch, ["logits"])) == {"logits"}


@pytest.mark.torch
def test_a_torch_save_module_on_its_assigned_gpu_answers_as_on_the_cpu(tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    module = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 2))
    path = tmp_path / "module.pt"
    torch.save(module, path)
    batch = np.random.default_rng(1).normal(size=(5, 4)).astype(np.float32)
    on_cpu = TorchPickleFlavor().load_in_process(path, trusted=True)
    with assigned_gpus(["0"]):
        given = TorchPickleFlavor().load_in_process(path, trusted=True)

    assert (on_cpu.device, given.device) == ("cpu", _torch_gpu())
    with torch.no_grad():
        expected = module(torch.from_numpy(batch)).numpy()
    np.testing.assert_allclose(given.predict(batch), expected, atol=1e-5)


def test_onnx_on_its_assigned_gpu_answers_as_on_the_cpu(tmp_path: Path) -> None:
    path = mlp(tmp_path / "mlp.onnx")
    x = np.random.default_rng(2).standard_normal((5, 8)).astype(np.float32)
    on_cpu = OnnxFlavor().load(path, trusted=False)
    with assigned_gpus(["0"]):
        given = OnnxFlavor().load(path, trusted=False)

    assert on_cpu.device == "cpu"
    assert on_cpu.session.get_providers() == ["CPUExecutionProvider"]
    assert given.device == _onnx_gpu()
    # onnxruntime's CUDA provider multiplies in TF32 by default (10-bit mantissa).
    rtol = 1e-4 if given.device == "cpu" else 5e-3
    np.testing.assert_allclose(given.predict(x), on_cpu.predict(x), rtol=rtol, atol=rtol)


def test_a_cached_onnx_model_given_a_gpu_onnxruntime_lacks_still_maps_its_weights(
    tmp_path: Path,
) -> None:
    if _onnx_gpu() != "cpu":
        pytest.skip("this onnxruntime runs the model on the GPU, from its file")
    path = mlp(tmp_path / "mlp.onnx")
    x = np.random.default_rng(3).standard_normal((4, 8)).astype(np.float32)
    with assigned_gpus(["0"]):
        given = OnnxFlavor().load_cached(path, trusted=False)

    assert given.device == "cpu"
    assert (mapped_folder(path) / MODEL).is_file()
    np.testing.assert_allclose(
        given.predict(x), OnnxFlavor().load(path, trusted=False).predict(x), rtol=1e-4, atol=1e-4
    )


def _load_transformers(archive: Path, name: str) -> Any:
    """Load from a copy in a folder of its own (the reconciler's local cache does so)."""
    copy = archive.parent / name / archive.name
    copy.parent.mkdir()
    shutil.copy(archive, copy)
    return TransformersFlavor().load(copy, trusted=False)


def _both(archive: Path) -> tuple[Any, Any]:
    """The model loaded without a GPU and given GPU "0"."""
    on_cpu = _load_transformers(archive, "cpu")
    with assigned_gpus(["0"]):
        given = _load_transformers(archive, "gpu")
    return on_cpu, given


def test_minilm_embeddings_on_its_assigned_gpu_are_those_on_the_cpu(tmp_path: Path) -> None:
    pytest.importorskip("transformers")
    on_cpu, given = _both(zip_dir(minilm_dir(), tmp_path / "minilm.zip"))

    assert (on_cpu.device, given.device) == ("cpu", _torch_gpu())
    assert str(next(given.model.parameters()).device) == given.device
    expected = on_cpu.predict(TEXTS)
    assert expected.shape == (3, 384)
    np.testing.assert_allclose(given.predict(TEXTS), expected, atol=1e-4)


def test_a_classifier_on_its_assigned_gpu_answers_as_on_the_cpu(tmp_path: Path) -> None:
    pytest.importorskip("transformers")
    from transformers import BertConfig, BertForSequenceClassification

    folder = tmp_path / "clf"
    folder.mkdir()
    for name in ("vocab.txt", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
        shutil.copy(minilm_dir() / name, folder / name)
    config = BertConfig(
        vocab_size=30522, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
        intermediate_size=64, num_labels=3, id2label={0: "sport", 1: "tech", 2: "art"},
        label2id={"sport": 0, "tech": 1, "art": 2},
    )  # fmt: skip
    BertForSequenceClassification(config).save_pretrained(folder, safe_serialization=True)
    on_cpu, given = _both(zip_dir(folder, tmp_path / "clf.zip"))

    assert (on_cpu.device, given.device) == ("cpu", _torch_gpu())
    expected, answered = on_cpu.predict_named(TEXTS), given.predict_named(TEXTS)
    np.testing.assert_allclose(answered["scores"], expected["scores"], atol=1e-5)
    assert list(answered["label"]) == list(expected["label"])


def test_generation_on_its_assigned_gpu_writes_the_cpus_greedy_text(tmp_path: Path) -> None:
    pytest.importorskip("transformers")
    folder = tiny_gpt2(tmp_path / "gpt2", new_tokens=8)
    on_cpu, given = _both(zip_dir(folder, tmp_path / "gpt2.zip"))

    assert (on_cpu.device, given.device) == ("cpu", _torch_gpu())
    prompt = np.array(["The quick brown fox"], dtype=object)
    expected = on_cpu.predict(prompt)
    assert expected[0]  # eight tokens of text
    assert list(given.predict(prompt)) == list(expected)
    pieces: list[str] = []
    done = given.generate("Offline loading", 4, pieces.append, lambda: False)
    assert (done.completion_tokens, done.finish_reason) == (4, "length")
    stopped = given.generate("Offline loading", 4, pieces.append, lambda: True)
    assert stopped.finish_reason == "cancelled"


def test_fill_mask_is_placed_on_its_device_and_fills_as_on_the_cpu(tmp_path: Path) -> None:
    pytest.importorskip("transformers")
    folder = tiny_bert(tmp_path / "mlm", "fill-mask")
    on_cpu, given = _both(zip_dir(folder, tmp_path / "mlm.zip"))

    masked = np.array(["the quick [MASK] fox"], dtype=object)
    assert (on_cpu.device, given.device) == ("cpu", _torch_gpu())
    assert str(next(given.model.parameters()).device) == _torch_gpu()
    assert list(given.predict(masked)[0]) == list(on_cpu.predict(masked)[0])
