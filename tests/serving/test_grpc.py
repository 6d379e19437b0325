"""The Open Inference Protocol over gRPC, as the real ``tritonclient.grpc`` speaks it.

The gRPC endpoint runs on the event loop of the served InferenceApp (as the
server runs it beside uvicorn), over the same repository, auth and batching; a
last test starts a whole server with ``grpc_port`` set.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import pytest
import tritonclient.grpc as triton
from tests.conftest import free_port, start_server
from tests.serving.conftest import ADMIN, OTHER, Models, Served, version
from tritonclient.grpc import service_pb2, service_pb2_grpc
from tritonclient.utils import InferenceServerException

from aimass.api.inference.grpc import GrpcEndpoint
from aimass.config import Settings
from aimass.plugins import default_registries
from aimass.serving import ServedDeployment

TEXTS = ["cheap flights to rome", "football match tonight", "hotel deals in paris",
         "the league final score", "train tickets to lisbon", "a goal in extra time"]  # fmt: skip
TOPICS = [0, 1, 0, 1, 0, 1]


def auth(token: str = ADMIN) -> dict[str, str]:
    """gRPC metadata with a bearer token (tritonclient sends headers as metadata)."""
    return {"authorization": f"Bearer {token}"}


@pytest.fixture(scope="module")
def topics(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """A text classifier on BYTES input (TF-IDF and logistic regression, as ONNX)."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    from aimass.zoo._onnx import text_to_onnx

    pipeline = make_pipeline(TfidfVectorizer(), LogisticRegression()).fit(TEXTS, TOPICS)
    path = Path(tmp_path_factory.mktemp("topics")) / "topics.onnx"
    path.write_bytes(text_to_onnx(pipeline).SerializeToString())
    return default_registries().flavors.get("onnx").load(path, trusted=False), pipeline


@pytest.fixture(scope="module")
def port(served: Served, topics: Any) -> Iterator[int]:
    """The gRPC endpoint on the served app's loop; its port."""
    predictor, _ = topics
    served.call(
        served.repository.put,
        ServedDeployment("topics", "default", [version(predictor, 1, flavor="onnx")]),
    )
    endpoint = GrpcEndpoint(served.app, "127.0.0.1", free_port(), 4 * 1024 * 1024)
    asyncio.run_coroutine_threadsafe(endpoint.start(), served.loop).result(10)
    yield int(endpoint.address.rsplit(":", 1)[1])
    asyncio.run_coroutine_threadsafe(endpoint.stop(1), served.loop).result(10)


@pytest.fixture
def client(port: int) -> Iterator[Any]:
    c = triton.InferenceServerClient(url=f"127.0.0.1:{port}")
    yield c
    c.close()


def _code(exc: pytest.ExceptionInfo[InferenceServerException]) -> str:
    return str(exc.value.status())


def test_health_needs_no_token_and_readiness_follows_the_deployment(client: Any) -> None:
    assert client.is_server_live()
    assert client.is_server_ready()
    assert client.is_model_ready("cancer", headers=auth())
    assert client.is_model_ready("cancer", model_version="2", headers=auth())
    assert not client.is_model_ready("cancer", model_version="5", headers=auth())
    assert not client.is_model_ready("warming", headers=auth())


def test_server_and_model_metadata(client: Any) -> None:
    assert client.get_server_metadata(headers=auth()).name == "aimass"
    meta = client.get_model_metadata("cancer", headers=auth(), as_json=True)
    assert meta["versions"] == ["1", "2"] and meta["platform"] == "sklearn"
    assert meta["inputs"] == [{"name": "input", "datatype": "FP64", "shape": ["-1", "30"]}]
    assert [o["name"] for o in meta["outputs"]] == ["predict", "predict_proba"]
    text = client.get_model_metadata("topics", headers=auth(), as_json=True)
    assert text["inputs"][0]["datatype"] == "BYTES"


def test_infer_with_raw_contents_matches_the_model(client: Any, models: Models) -> None:
    x = models.x[:5].astype("float64")
    tensor = triton.InferInput("input", list(x.shape), "FP64")
    tensor.set_data_from_numpy(x)  # raw_input_contents, tritonclient's way

    result = client.infer("cancer", [tensor], headers=auth(), request_id="g-1")

    np.testing.assert_array_equal(result.as_numpy("predict"), models.sklearn.predict(x))
    np.testing.assert_allclose(result.as_numpy("predict_proba"), models.sklearn.predict_proba(x))
    assert result.get_response().id == "g-1"


def test_infer_fp32_on_onnx_with_a_requested_output(client: Any, models: Models) -> None:
    x = models.x[:4].astype("float32")
    name = models.onnx.signature.inputs[0].name
    tensor = triton.InferInput(name, list(x.shape), "FP32")
    tensor.set_data_from_numpy(x)
    wanted = [triton.InferRequestedOutput("probabilities")]

    result = client.infer("cancer-onnx", [tensor], outputs=wanted, headers=auth())

    np.testing.assert_allclose(
        result.as_numpy("probabilities"), models.onnx.predict_proba(x), rtol=1e-6
    )
    assert result.as_numpy("label") is None  # only what was asked for


def test_infer_bytes_text(client: Any, topics: Any) -> None:
    _, pipeline = topics
    texts = np.array([[b"cheap hotel in rome"], [b"the final goal"]], dtype=object)
    tensor = triton.InferInput("text", [2, 1], "BYTES")
    tensor.set_data_from_numpy(texts)

    result = client.infer("topics", [tensor], headers=auth())

    expected = pipeline.predict(["cheap hotel in rome", "the final goal"])
    np.testing.assert_array_equal(result.as_numpy("label").ravel(), expected)


def test_typed_contents_work_as_kserve_clients_send_them(port: int, models: Models) -> None:
    x = models.x[:2].astype("float64")
    request = service_pb2.ModelInferRequest(model_name="cancer", model_version="1")
    tensor = request.inputs.add(name="input", datatype="FP64", shape=list(x.shape))
    tensor.contents.fp64_contents.extend(x.ravel().tolist())
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        stub = service_pb2_grpc.GRPCInferenceServiceStub(channel)
        reply = stub.ModelInfer(request, metadata=tuple(auth().items()))
    names = [o.name for o in reply.outputs]
    predict = np.frombuffer(reply.raw_output_contents[names.index("predict")], dtype=np.int64)
    np.testing.assert_array_equal(predict, models.sklearn.predict(x))
    assert reply.model_version == "1"


def test_errors_are_grpc_codes_with_a_clear_message(client: Any, models: Models) -> None:
    x = models.x[:1].astype("float64")
    tensor = triton.InferInput("input", list(x.shape), "FP64")
    tensor.set_data_from_numpy(x)
    with pytest.raises(InferenceServerException) as missing:
        client.infer("nope", [tensor], headers=auth())
    assert _code(missing) == "StatusCode.NOT_FOUND" and "unknown model 'nope'" in str(missing.value)
    with pytest.raises(InferenceServerException) as anonymous:
        client.infer("cancer", [tensor])
    assert _code(anonymous) == "StatusCode.UNAUTHENTICATED"
    with pytest.raises(InferenceServerException) as forged:
        client.infer("cancer", [tensor], headers=auth("forged"))
    assert _code(forged) == "StatusCode.UNAUTHENTICATED"
    with pytest.raises(InferenceServerException) as other:
        client.infer("cancer", [tensor], headers=auth(OTHER))
    assert _code(other) == "StatusCode.PERMISSION_DENIED"
    wrong = triton.InferInput("input", [1, 3], "FP64")
    wrong.set_data_from_numpy(np.zeros((1, 3)))
    with pytest.raises(InferenceServerException) as shape:
        client.infer("cancer", [wrong], headers=auth())
    assert _code(shape) == "StatusCode.INVALID_ARGUMENT" and "shape" in str(shape.value)
    with pytest.raises(InferenceServerException) as broken:
        client.infer("broken", [tensor], headers=auth())
    assert _code(broken) == "StatusCode.INTERNAL"
    assert "/srv/secret" not in str(broken.value)  # no internal name leaks


def test_the_server_serves_grpc_when_its_port_is_set(tmp_path: Path) -> None:
    port = free_port()
    settings = Settings(
        home=tmp_path / "home",
        database_url=f"sqlite:///{tmp_path / 'meta.db'}",
        artifacts=str(tmp_path / "artifacts"),
        port=free_port(),
        grpc_port=port,
        tune_gc=False,
        jobs=False,
    )
    for server in start_server(settings):
        client = triton.InferenceServerClient(url=f"127.0.0.1:{port}")
        try:
            assert client.is_server_live()
            metadata = client.get_server_metadata(headers=auth(server.admin_token))
            assert metadata.name == "aimass"
            with pytest.raises(InferenceServerException) as refused:
                client.get_server_metadata()
            assert _code(refused) == "StatusCode.UNAUTHENTICATED"
        finally:
            client.close()
