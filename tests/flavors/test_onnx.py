"""The ONNX flavor on real skl2onnx models: detection, signature, predictions, bad files."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from aimass.errors import InvalidInput, Unprocessable
from aimass.flavors.onnx import OnnxFlavor
from aimass.flavors.registry import FlavorRegistry, inspect_upload

Data = tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]


def _to_onnx(model: Any, zipmap: bool = False) -> bytes:
    from skl2onnx import to_onnx

    sample = np.zeros((1, 30), dtype=np.float32)
    proto = to_onnx(model, sample, options={id(model[-1]): {"zipmap": zipmap}})
    return bytes(proto.SerializeToString())


@pytest.fixture
def onnx_file(tmp_path: Path, logreg: Any) -> Path:
    path = tmp_path / "upload.bin"
    path.write_bytes(_to_onnx(logreg))
    return path


def test_skl2onnx_model_is_detected_with_its_signature(
    registry: FlavorRegistry, onnx_file: Path
) -> None:
    flavor, signature = inspect_upload(registry, onnx_file, "cancer.onnx", None, trusted=False)

    assert flavor == "onnx"
    assert signature is not None
    [features] = signature.inputs
    assert (features.name, features.datatype, features.shape) == ("X", "FP32", [-1, 30])
    outputs = {o.name: (o.datatype, o.shape) for o in signature.outputs}
    assert outputs == {"label": ("INT64", [-1]), "probabilities": ("FP32", [-1, 2])}


def test_onnx_is_detected_from_its_bytes_without_the_suffix(
    registry: FlavorRegistry, onnx_file: Path
) -> None:
    assert registry.detect(onnx_file, "model.bin").name == "onnx"


def test_onnx_predictions_equal_sklearn(onnx_file: Path, logreg: Any, cancer: Data) -> None:
    features, _ = cancer
    predictor = OnnxFlavor().load(onnx_file, trusted=False)

    labels = predictor.predict(features)  # float64 in, cast to the model's float32
    proba = predictor.predict_proba(features)

    assert (labels == logreg.predict(features)).mean() > 0.99
    assert proba is not None
    np.testing.assert_allclose(proba, logreg.predict_proba(features), atol=1e-4)


def test_onnx_predict_with_a_mapping_feeds_inputs_by_name(onnx_file: Path, cancer: Data) -> None:
    features, _ = cancer
    predictor = OnnxFlavor().load(onnx_file, trusted=False)

    assert predictor.predict({"X": features[:5]}).shape == (5,)
    with pytest.raises(InvalidInput, match="inputs are X"):
        predictor.predict({"wrong": features[:5]})


def test_onnx_zipmap_output_is_not_a_probability_tensor(
    tmp_path: Path, logreg: Any, cancer: Data
) -> None:
    path = tmp_path / "zipmap.onnx"
    path.write_bytes(_to_onnx(logreg, zipmap=True))

    predictor = OnnxFlavor().load(path, trusted=False)

    assert predictor.predict_proba(cancer[0][:3]) is None
    assert predictor.signature is not None
    assert [o.name for o in predictor.signature.outputs] == ["output_label"]


def test_truncated_onnx_is_unprocessable(
    registry: FlavorRegistry, onnx_file: Path, tmp_path: Path
) -> None:
    truncated = tmp_path / "truncated.onnx"
    truncated.write_bytes(onnx_file.read_bytes()[:200])

    with pytest.raises(Unprocessable, match="not a valid ONNX model"):
        inspect_upload(registry, truncated, "truncated.onnx", None, trusted=False)


def test_random_bytes_named_onnx_are_unprocessable(
    registry: FlavorRegistry, tmp_path: Path
) -> None:
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(bytes(range(7, 256)) * 40)

    with pytest.raises(Unprocessable, match="not a valid ONNX model") as caught:
        inspect_upload(registry, junk, "junk.onnx", None, trusted=False)
    assert str(tmp_path) not in caught.value.message


def test_random_bytes_without_a_name_are_not_detected(
    registry: FlavorRegistry, tmp_path: Path
) -> None:
    junk = tmp_path / "junk"
    junk.write_bytes(b"\x08" + bytes(range(256)) * 4)

    with pytest.raises(InvalidInput, match="could not tell the flavor"):
        registry.detect(junk, "junk.bin")


def _matmul_model() -> Any:
    """A hand-built graph y = x @ W whose weight W is an initializer also listed as an input."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    weight = numpy_helper.from_array(np.arange(12, dtype=np.float32).reshape(4, 3), name="W")
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "W"], ["y"])],
        "matmul",
        inputs=[
            helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 4]),
            helper.make_tensor_value_info("W", TensorProto.FLOAT, [4, 3]),
        ],
        outputs=[helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 3])],
        initializer=[weight],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def test_initializers_listed_as_inputs_are_not_in_the_signature(tmp_path: Path) -> None:
    import onnx

    path = tmp_path / "matmul.onnx"
    onnx.save_model(_matmul_model(), path)

    predictor = OnnxFlavor().load(path, trusted=False)

    assert predictor.signature is not None
    assert [(i.name, i.shape) for i in predictor.signature.inputs] == [("x", [-1, 4])]
    np.testing.assert_allclose(
        predictor.predict(np.ones((2, 4))), np.ones((2, 4)) @ np.arange(12).reshape(4, 3)
    )
    assert predictor.predict_proba(np.ones((2, 4))) is None


def test_onnx_with_external_data_is_refused(tmp_path: Path) -> None:
    import onnx

    path = tmp_path / "external.onnx"
    onnx.save_model(
        _matmul_model(), path, save_as_external_data=True, location="weights.bin", size_threshold=0
    )
    assert (tmp_path / "weights.bin").exists()

    with pytest.raises(Unprocessable, match="external data"):
        OnnxFlavor().inspect(path, trusted=False)
