"""PyTorch flavors: TorchScript round trips (safe) and torch.save archives (trusted only)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from aimass.errors import InvalidInput, Unprocessable
from aimass.flavors.registry import FlavorRegistry, inspect_upload
from aimass.flavors.serialize import serialize_model
from aimass.flavors.signature import Signature, TensorSpec
from aimass.flavors.torchscript import TorchScriptFlavor

pytestmark = pytest.mark.torch


@pytest.fixture
def torch() -> Any:
    return pytest.importorskip("torch")


def _mlp(torch: Any) -> Any:
    torch.manual_seed(0)
    return torch.nn.Sequential(
        torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 3), torch.nn.Softmax(dim=1)
    )


def _expected(torch: Any, module: Any, batch: np.ndarray[Any, Any]) -> Any:
    with torch.no_grad():
        return module(torch.from_numpy(batch.astype(np.float32))).numpy()


def test_torchscript_mlp_round_trip_with_inferred_signature(
    registry: FlavorRegistry, tmp_path: Path, torch: Any
) -> None:
    module = _mlp(torch)
    example = np.random.default_rng(0).normal(size=(5, 4)).astype(np.float32)
    path, flavor_name = serialize_model(module, tmp_path, example=example)

    flavor, signature = inspect_upload(registry, path, "model.pt", None, trusted=False)
    predictor = registry.get(flavor).load(path, trusted=False)

    assert (path.name, flavor_name, flavor) == ("model.pt", "torchscript", "torchscript")
    assert signature == Signature(
        inputs=[TensorSpec(name="input", datatype="FP32", shape=[-1, 4])],
        outputs=[TensorSpec(name="output", datatype="FP32", shape=[-1, 3])],
    )
    batch = np.random.default_rng(1).normal(size=(7, 4))  # float64, cast per the signature
    np.testing.assert_allclose(predictor.predict(batch), _expected(torch, module, batch), atol=1e-6)
    assert predictor.predict_proba(batch) is None


def test_torchscript_signature_naming_probabilities_gives_predict_proba(
    tmp_path: Path, torch: Any
) -> None:
    module = _mlp(torch)
    signature = Signature(
        inputs=[TensorSpec(name="input", datatype="FP32", shape=[-1, 4])],
        outputs=[TensorSpec(name="probabilities", datatype="FP32", shape=[-1, 3])],
    )
    path, _ = serialize_model(module, tmp_path, signature=signature)

    predictor = TorchScriptFlavor().load(path, trusted=False)

    batch = np.ones((2, 4), dtype=np.float32)
    assert predictor.signature == signature
    proba = predictor.predict_proba(batch)
    assert proba is not None
    np.testing.assert_allclose(proba.sum(axis=1), [1.0, 1.0], rtol=1e-6)


def test_torchscript_without_signature_inspects_to_none(tmp_path: Path, torch: Any) -> None:
    path, _ = serialize_model(_mlp(torch), tmp_path)

    assert TorchScriptFlavor().inspect(path, trusted=False) is None
    assert TorchScriptFlavor().load(path, trusted=False).predict(np.ones((1, 4))).shape == (1, 3)


class VarArgs:
    """Holder so the module class below is built only when torch is importable."""

    @staticmethod
    def module(torch: Any) -> Any:
        class FirstOfMany(torch.nn.Module):  # type: ignore[misc]
            def __init__(self) -> None:
                super().__init__()
                self.linear = torch.nn.Linear(4, 2)

            def forward(self, *tensors: Any) -> Any:  # *args cannot be scripted
                return self.linear(tensors[0])

        return FirstOfMany()


def test_unscriptable_module_is_traced_from_the_example(tmp_path: Path, torch: Any) -> None:
    module = VarArgs.module(torch)
    example = np.ones((3, 4), dtype=np.float32)

    path, flavor = serialize_model(module, tmp_path, example=example)

    predictor = TorchScriptFlavor().load(path, trusted=False)
    assert flavor == "torchscript"
    np.testing.assert_allclose(
        predictor.predict(example), _expected(torch, module, example), atol=1e-6
    )


def test_unscriptable_module_without_an_example_asks_for_one(tmp_path: Path, torch: Any) -> None:
    with pytest.raises(InvalidInput, match="pass example="):
        serialize_model(VarArgs.module(torch), tmp_path)


@pytest.mark.parametrize("what", ["state_dict", "module"])
def test_torch_save_archive_is_detected_as_needing_trust(
    registry: FlavorRegistry, tmp_path: Path, torch: Any, what: str
) -> None:
    module = _mlp(torch)
    path = tmp_path / "model.pt"
    torch.save(module.state_dict() if what == "state_dict" else module, path)

    assert registry.detect(path, "model.pt").name == "torch-pickle"
    with pytest.raises(Unprocessable, match="trusted"):
        inspect_upload(registry, path, "model.pt", None, trusted=False)
    with pytest.raises(Unprocessable, match="not look like a model file of flavor 'torchscript'"):
        inspect_upload(registry, path, "model.pt", "torchscript", trusted=False)


def test_trusted_torch_save_of_a_module_loads(
    registry: FlavorRegistry, tmp_path: Path, torch: Any
) -> None:
    module = _mlp(torch)
    path = tmp_path / "model.pt"
    torch.save(module, path)

    flavor, signature = inspect_upload(registry, path, "model.pt", None, trusted=True)
    predictor = registry.get(flavor).load(path, trusted=True)

    batch = np.ones((2, 4), dtype=np.float32)
    assert signature is None
    np.testing.assert_allclose(predictor.predict(batch), _expected(torch, module, batch))


def test_trusted_state_dict_alone_is_unprocessable(
    registry: FlavorRegistry, tmp_path: Path, torch: Any
) -> None:
    path = tmp_path / "weights.pt"
    torch.save(_mlp(torch).state_dict(), path)

    with pytest.raises(Unprocessable, match=r"not a torch\.nn\.Module"):
        inspect_upload(registry, path, "weights.pt", None, trusted=True)


def test_without_torch_torchscript_is_recognised_but_asks_for_the_extra(
    registry: FlavorRegistry, tmp_path: Path, torch: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    path, _ = serialize_model(_mlp(torch), tmp_path)
    monkeypatch.setitem(sys.modules, "torch", None)  # `import torch` now raises ImportError

    assert registry.detect(path, "model.pt").name == "torchscript"
    with pytest.raises(Unprocessable, match=r"install aimass\[torch\]"):
        inspect_upload(registry, path, "model.pt", None, trusted=False)
