"""The Open Inference Protocol as the real tritonclient.http speaks it, with its defaults."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
import tritonclient.http as triton
from tests.serving.conftest import AUTH, Models, Served
from tritonclient.utils import InferenceServerException


def auth() -> dict[str, str]:
    """Fresh headers for each call: tritonclient adds its own to the dict it is given."""
    return dict(AUTH)


@pytest.fixture
def client(served: Served) -> Iterator[Any]:
    """A tritonclient for the served app."""
    c = triton.InferenceServerClient(url=f"127.0.0.1:{served.port}")
    yield c
    c.close()


def test_server_health_and_model_readiness(client: Any) -> None:
    assert client.is_server_live()
    assert client.is_server_ready()
    assert client.is_model_ready("cancer", headers=auth())
    assert client.is_model_ready("cancer", model_version="2", headers=auth())
    assert not client.is_model_ready("cancer", model_version="5", headers=auth())
    assert not client.is_model_ready("warming", headers=auth())


def test_server_and_model_metadata(client: Any) -> None:
    server = client.get_server_metadata(headers=auth())
    assert server["name"] == "aimass"
    assert "binary_tensor_data" in server["extensions"]
    meta = client.get_model_metadata("cancer", headers=auth())
    assert meta["versions"] == ["1", "2"]
    assert meta["platform"] == "sklearn"
    assert meta["inputs"] == [{"name": "input", "datatype": "FP64", "shape": [-1, 30]}]
    assert [o["name"] for o in meta["outputs"]] == ["predict", "predict_proba"]
    assert client.get_model_metadata("cancer", model_version="2", headers=auth())["versions"] == [
        "2"
    ]
    onnx = client.get_model_metadata("cancer-onnx", headers=auth())
    assert onnx["platform"] == "onnx"
    assert onnx["inputs"][0]["datatype"] == "FP32"
    assert [o["name"] for o in onnx["outputs"]] == ["label", "probabilities"]


def _input(name: str, x: np.ndarray[Any, Any], datatype: str, binary: bool = True) -> Any:
    tensor = triton.InferInput(name, list(x.shape), datatype)
    tensor.set_data_from_numpy(x, binary_data=binary)
    return tensor


def test_infer_sklearn_with_binary_defaults(client: Any, models: Models) -> None:
    x = models.x[:5].astype("float64")
    result = client.infer("cancer", [_input("input", x, "FP64")], headers=auth(), request_id="r-1")
    np.testing.assert_array_equal(result.as_numpy("predict"), models.sklearn.predict(x))
    np.testing.assert_allclose(result.as_numpy("predict_proba"), models.sklearn.predict_proba(x))
    response = result.get_response()
    assert response["id"] == "r-1"
    assert response["model_version"] in ("1", "2")


def test_infer_with_json_inputs_and_outputs(client: Any, models: Models) -> None:
    x = models.x[10:13].astype("float64")
    outputs = [
        triton.InferRequestedOutput("predict", binary_data=False),
        triton.InferRequestedOutput("predict_proba", binary_data=False),
    ]
    result = client.infer(
        "cancer", [_input("input", x, "FP64", binary=False)], outputs=outputs, headers=auth()
    )
    np.testing.assert_array_equal(result.as_numpy("predict"), models.sklearn.predict(x))
    np.testing.assert_allclose(result.as_numpy("predict_proba"), models.sklearn.predict_proba(x))
    assert "data" in result.get_output("predict")


def test_infer_one_output_binary_the_other_absent(client: Any, models: Models) -> None:
    x = models.x[:2].astype("float64")
    result = client.infer(
        "cancer",
        [_input("input", x, "FP64")],
        outputs=[triton.InferRequestedOutput("predict_proba")],
        headers=auth(),
    )
    assert result.as_numpy("predict") is None
    assert result.as_numpy("predict_proba").shape == (2, 2)


def test_infer_with_the_version_in_the_path(client: Any, models: Models) -> None:
    x = models.x[20:22].astype("float64")
    for _ in range(5):
        result = client.infer(
            "cancer", [_input("input", x, "FP64")], model_version="2", headers=auth()
        )
        assert result.get_response()["model_version"] == "2"
        np.testing.assert_array_equal(result.as_numpy("predict"), models.sklearn.predict(x))


def test_infer_onnx_binary_and_json(client: Any, models: Models) -> None:
    x = models.x[30:34]
    expected = models.onnx.predict(x)
    for binary in (True, False):
        result = client.infer("cancer-onnx", [_input("X", x, "FP32", binary)], headers=auth())
        np.testing.assert_array_equal(result.as_numpy("label"), expected)
        assert result.as_numpy("probabilities").dtype == np.float32
    # float64 data is cast down to the model's FP32
    result = client.infer("cancer-onnx", [_input("X", x.astype("float64"), "FP64")], headers=auth())
    np.testing.assert_array_equal(result.as_numpy("label"), expected)


def test_unbatched_deployment_answers(client: Any, models: Models) -> None:
    x = models.x[:3].astype("float64")
    result = client.infer("cancer-unbatched", [_input("input", x, "FP64")], headers=auth())
    np.testing.assert_array_equal(result.as_numpy("predict"), models.sklearn.predict(x))


def test_errors_come_back_as_exceptions(client: Any, models: Models) -> None:
    x = models.x[:1].astype("float64")
    with pytest.raises(InferenceServerException, match="unknown model"):
        client.infer("nope", [_input("input", x, "FP64")], headers=auth())
    with pytest.raises(InferenceServerException, match="missing input 'input'"):
        client.infer("cancer", [_input("other", x, "FP64")], headers=auth())
    with pytest.raises(InferenceServerException, match="bearer token"):
        client.infer("cancer", [_input("input", x, "FP64")])


def test_project_comes_from_the_query(client: Any, models: Models) -> None:
    x = models.x[:1].astype("float64")
    other = {"Authorization": "Bearer viewer-of-other-project"}
    result = client.infer(
        "cancer", [_input("input", x, "FP64")], headers=other, query_params={"project": "other"}
    )
    assert result.get_response()["model_version"] == "7"
    with pytest.raises(InferenceServerException, match="may not use project 'default'"):
        client.infer("cancer", [_input("input", x, "FP64")], headers=other)
