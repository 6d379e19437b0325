"""The inference app over real HTTP: errors, limits, auth, batching, canaries and swaps."""

from __future__ import annotations

import asyncio
import re
import threading
from collections import Counter
from collections.abc import Iterator
from typing import Any

import httpx
import numpy as np
import orjson
import pytest
from tests.serving.conftest import (
    AUTH,
    MAX_BODY,
    MAX_ELEMENTS,
    OTHER,
    Models,
    Served,
    authenticate,
    serve,
    version,
)

from aimass.api.inference import InferenceApp
from aimass.serving import ModelRepository, ServedDeployment


@pytest.fixture
def http(served: Served) -> Iterator[httpx.Client]:
    """An httpx client with the admin token."""
    with httpx.Client(base_url=served.url, headers=AUTH, timeout=30) as c:
        yield c


def _request(
    x: np.ndarray[Any, Any], name: str = "input", datatype: str = "FP64"
) -> dict[str, Any]:
    return {
        "inputs": [
            {"name": name, "shape": list(x.shape), "datatype": datatype, "data": x.ravel().tolist()}
        ]
    }


def _error(response: httpx.Response, status: int) -> str:
    assert response.status_code == status, response.text
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["x-request-id"]
    body = response.json()
    assert set(body) == {"error"}
    assert "Traceback" not in response.text and "/srv" not in response.text
    message: str = body["error"]
    return message


def test_json_infer_answers_and_echoes_the_id(http: httpx.Client, models: Models) -> None:
    x = models.x[:3].astype("float64")
    response = http.post("/v2/models/cancer/infer", json={**_request(x), "id": "abc"})
    assert response.status_code == 200, response.text
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert body["id"] == "abc"
    assert body["model_name"] == "cancer"
    outputs = {o["name"]: o for o in body["outputs"]}
    assert outputs["predict"]["shape"] == [3]
    assert outputs["predict"]["data"] == models.sklearn.predict(x).tolist()
    assert outputs["predict_proba"]["shape"] == [3, 2]
    assert outputs["predict_proba"]["datatype"] == "FP64"


def test_a_client_request_id_is_kept(http: httpx.Client, models: Models) -> None:
    response = http.get("/v2/health/live", headers={"X-Request-ID": "client-id-123"})
    assert response.headers["x-request-id"] == "client-id-123"
    for bad in ("short", "has spaces <b>in</b> it"):
        response = http.get("/v2/health/live", headers={"X-Request-ID": bad})
        assert response.headers["x-request-id"] != bad


def test_wrong_shape_is_400(http: httpx.Client, models: Models) -> None:
    x = models.x[:1, :29].astype("float64")
    message = _error(http.post("/v2/models/cancer/infer", json=_request(x)), 400)
    assert "input 'input' has shape [1, 29]" in message


def test_wrong_datatype_is_400(http: httpx.Client) -> None:
    body = {
        "inputs": [{"name": "input", "shape": [1, 30], "datatype": "BYTES", "data": ["a"] * 30}]
    }
    message = _error(http.post("/v2/models/cancer/infer", json=body), 400)
    assert "datatype BYTES" in message and "'input'" in message
    body["inputs"][0]["datatype"] = "FP128"
    assert "not one of" in _error(http.post("/v2/models/cancer/infer", json=body), 400)


def test_numeric_inputs_are_cast_within_their_kind(http: httpx.Client, models: Models) -> None:
    x = models.x[:1].astype("float64")
    # FP64 data for the FP32 ONNX input, and INT64 data for it, are cast safely.
    assert http.post("/v2/models/cancer-onnx/infer", json=_request(x, "X")).status_code == 200
    body = _request(x.astype("int64"), "X", "INT64")
    assert http.post("/v2/models/cancer-onnx/infer", json=body).status_code == 200


def test_missing_input_is_400(http: httpx.Client, models: Models) -> None:
    message = _error(http.post("/v2/models/cancer/infer", json=_request(models.x[:1], "x")), 400)
    assert message == "missing input 'input'"


def test_unparsable_json_is_400(http: httpx.Client) -> None:
    message = _error(http.post("/v2/models/cancer/infer", content=b"{not json"), 400)
    assert "not valid JSON" in message
    assert "inputs" in _error(http.post("/v2/models/cancer/infer", json={"inputs": []}), 400)


def test_element_count_mismatch_is_400(http: httpx.Client) -> None:
    body = {"inputs": [{"name": "input", "shape": [1, 30], "datatype": "FP64", "data": [0.0] * 29}]}
    message = _error(http.post("/v2/models/cancer/infer", json=body), 400)
    assert "30 elements but 'data' has 29" in message


def test_binary_size_mismatch_is_400(http: httpx.Client) -> None:
    header = orjson.dumps(
        {
            "inputs": [
                {
                    "name": "input",
                    "shape": [1, 30],
                    "datatype": "FP64",
                    "parameters": {"binary_data_size": 100},
                }
            ]
        }
    )
    response = http.post(
        "/v2/models/cancer/infer",
        content=header + b"\0" * 100,
        headers={"Inference-Header-Content-Length": str(len(header))},
    )
    assert "has 100 bytes of binary data" in _error(response, 400)


def test_over_max_tensor_elements_is_refused_before_allocating(http: httpx.Client) -> None:
    rows = MAX_ELEMENTS // 30 + 1
    body = {"inputs": [{"name": "input", "shape": [rows, 30], "datatype": "FP64", "data": [0.0]}]}
    assert "over the limit" in _error(http.post("/v2/models/cancer/infer", json=body), 400)
    body["inputs"][0]["shape"] = [2**40, 2**40]
    assert "over the limit" in _error(http.post("/v2/models/cancer/infer", json=body), 400)
    body["inputs"][0]["shape"] = [-1, 30]
    assert ">= 0" in _error(http.post("/v2/models/cancer/infer", json=body), 400)


def test_body_over_the_limit_with_content_length_is_413(http: httpx.Client) -> None:
    response = http.post("/v2/models/cancer/infer", content=b" " * (MAX_BODY + 1))
    assert "over the limit" in _error(response, 413)


def test_chunked_body_over_the_limit_is_413(served: Served) -> None:
    def chunks() -> Iterator[bytes]:
        for _ in range(10):
            yield b" " * (MAX_BODY // 8)

    with httpx.Client(base_url=served.url, headers=AUTH, timeout=30) as c:
        response = c.post("/v2/models/cancer/infer", content=chunks())
    assert response.request.headers.get("transfer-encoding") == "chunked"
    assert "over the limit" in _error(response, 413)


def test_chunked_body_under_the_limit_is_read(served: Served, models: Models) -> None:
    payload = orjson.dumps(_request(models.x[:2].astype("float64")))

    def chunks() -> Iterator[bytes]:
        for i in range(0, len(payload), 100):
            yield payload[i : i + 100]

    with httpx.Client(base_url=served.url, headers=AUTH, timeout=30) as c:
        response = c.post("/v2/models/cancer/infer", content=chunks())
    assert response.status_code == 200, response.text


def test_unknown_model_and_version_are_404(http: httpx.Client, models: Models) -> None:
    body = _request(models.x[:1])
    assert _error(http.post("/v2/models/nope/infer", json=body), 404) == "unknown model 'nope'"
    message = _error(http.post("/v2/models/cancer/versions/9/infer", json=body), 404)
    assert message == "unknown version '9' of model 'cancer'"
    _error(http.get("/v2/models/nope"), 404)
    _error(http.get("/v2/models/cancer/versions/9"), 404)
    _error(http.get("/v2/models/nope/ready"), 404)
    _error(http.get("/v2/nothing/here"), 404)


def test_loading_and_failed_models_are_503(http: httpx.Client, models: Models) -> None:
    body = _request(models.x[:1])
    message = _error(http.post("/v2/models/warming/infer", json=body), 503)
    assert message == "model 'warming' is loading; try again soon"
    message = _error(http.post("/v2/models/bad/infer", json=body), 503)
    assert message == "model 'bad' failed to load: the model file is not a valid skops file"
    assert http.get("/v2/models/warming/ready").status_code == 400
    assert http.get("/v2/models/cancer/ready").status_code == 200


def test_auth_is_required_except_for_health(served: Served, models: Models) -> None:
    with httpx.Client(base_url=served.url, timeout=30) as anonymous:
        assert anonymous.get("/v2/health/live").status_code == 200
        assert anonymous.get("/v2/health/ready").status_code == 200
        for path in ("/v2", "/v2/models/cancer", "/v2/models/cancer/ready", "/metrics"):
            response = anonymous.get(path)
            assert "bearer token" in _error(response, 401)
            assert response.headers["www-authenticate"] == "Bearer"
        response = anonymous.post("/v2/models/cancer/infer", json=_request(models.x[:1]))
        _error(response, 401)
        bad = {"Authorization": "Bearer wrong"}
        assert _error(anonymous.get("/v2", headers=bad), 401) == "invalid token"
        other = {"Authorization": f"Bearer {OTHER}"}
        assert "may not use project" in _error(
            anonymous.get("/v2/models/cancer", headers=other), 403
        )
        assert anonymous.get("/v2/models/cancer?project=other", headers=other).status_code == 200
        assert _error(anonymous.get("/metrics", headers=other), 403)


def test_wrong_method_is_405(http: httpx.Client) -> None:
    assert "use POST" in _error(http.get("/v2/models/cancer/infer"), 405)
    assert "use GET" in _error(http.post("/v2/models/cancer", content=b"{}"), 405)


def test_a_failing_model_answers_500_cleanly_and_others_keep_serving(
    http: httpx.Client, models: Models
) -> None:
    x = models.x[:1].astype("float64")
    response = http.post("/v2/models/broken/infer", json=_request(x))
    message = _error(response, 500)
    request_id = response.headers["x-request-id"]
    assert message == f"model failed to predict; see server logs (request id {request_id})"
    assert "exploded" not in response.text
    assert http.post("/v2/models/cancer/infer", json=_request(x)).status_code == 200


def test_plain_predict_route_takes_rows_and_records(http: httpx.Client, models: Models) -> None:
    x = models.x[:4].astype("float64")
    response = http.post("/api/v1/deployments/cancer-onnx/predict", json={"inputs": x.tolist()})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["deployment"] == "cancer-onnx" and body["model"] == "cancer"
    assert body["version"] == 1
    assert body["predictions"] == models.onnx.predict(x.astype("float32")).tolist()
    assert np.asarray(body["probabilities"]).shape == (4, 2)
    records = [{f"f{j}": float(v) for j, v in enumerate(row)} for row in x]
    response = http.post("/api/v1/deployments/cancer/predict", json={"inputs": records})
    assert response.status_code == 200, response.text
    assert response.json()["predictions"] == models.sklearn.predict(x).tolist()


def test_plain_predict_route_errors_use_the_control_plane_shape(
    served: Served, http: httpx.Client
) -> None:
    response = http.post("/api/v1/deployments/cancer/predict", content=b"nope")
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "invalid_input"
    assert error["request_id"] == response.headers["x-request-id"]
    response = http.post("/api/v1/deployments/missing/predict", json={"inputs": [[1.0]]})
    assert response.json()["error"]["code"] == "not_found"
    with httpx.Client(base_url=served.url, timeout=30) as anonymous:
        response = anonymous.post("/api/v1/deployments/cancer/predict", json={"inputs": [[1]]})
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "unauthenticated"
    response = http.post("/api/v1/deployments/cancer/predict", json={"inputs": [[1.0, 2.0]]})
    assert "shape [1, 2]" in response.json()["error"]["message"]


def _infer_many(
    url: str, rows: np.ndarray[Any, Any], path: str, concurrency: int, name: str = "input"
) -> list[Any]:
    """Send one request per row, ``concurrency`` at a time; return each response's JSON."""

    async def main() -> list[Any]:
        limits = httpx.Limits(max_connections=concurrency)
        async with httpx.AsyncClient(base_url=url, headers=AUTH, limits=limits, timeout=60) as c:
            semaphore = asyncio.Semaphore(concurrency)

            async def one(row: np.ndarray[Any, Any]) -> Any:
                async with semaphore:
                    response = await c.post(path, json=_request(row[None, :], name))
                    assert response.status_code == 200, response.text
                    return response.json()

            return await asyncio.gather(*(one(row) for row in rows))

    return asyncio.run(main())


def _metric(text: str, name: str, **labels: str) -> float:
    total = 0.0
    for line in text.splitlines():
        if not line.startswith(name + "{"):
            continue
        found = dict(re.findall(r'(\w+)="([^"]*)"', line[: line.index("}")]))
        if all(found.get(k) == v for k, v in labels.items()):
            total += float(line.rsplit(" ", 1)[1])
    return total


def test_concurrent_requests_each_get_their_own_answer_in_batches(
    served: Served, http: httpx.Client, models: Models
) -> None:
    rows = models.x[:256].astype("float64")
    answers = _infer_many(served.url, rows, "/v2/models/cancer-onnx/infer", 64, "X")
    expected = models.onnx.predict(rows.astype("float32"))
    proba = models.onnx.predict_proba(rows.astype("float32"))
    for i, answer in enumerate(answers):
        outputs = {o["name"]: o["data"] for o in answer["outputs"]}
        assert outputs["label"] == [expected[i]]
        np.testing.assert_allclose(outputs["probabilities"], proba[i], atol=1e-5)
    text = http.get("/metrics").text
    labels = {"deployment": "cancer-onnx", "version": "1"}
    batches = _metric(text, "aimass_inference_batch_size_count", **labels)
    singles = _metric(text, "aimass_inference_batch_size_bucket", le="1.0", **labels)
    assert batches > 0
    assert singles < batches, "no batch of more than one request formed"
    assert _metric(text, "aimass_inference_requests_total", code="200", **labels) >= 256
    assert _metric(text, "aimass_inference_queue_seconds_count", **labels) >= 256
    assert _metric(text, "aimass_inference_request_seconds_count", **labels) >= 256


def test_a_90_10_canary_splits_1000_requests(served: Served, models: Models) -> None:
    rows = np.repeat(models.x[:1].astype("float64"), 1000, axis=0)
    answers = _infer_many(served.url, rows, "/v2/models/cancer/infer", 16)
    counts = Counter(a["model_version"] for a in answers)
    assert 850 <= counts["1"] <= 950, counts
    assert counts["1"] + counts["2"] == 1000


def test_swapping_a_deployment_under_load_drops_no_request(models: Models) -> None:
    repository = ModelRepository()
    repository.put(ServedDeployment("swap", "default", [version(models.sklearn, 1)]))
    app = InferenceApp(repository, authenticate, True, MAX_BODY, MAX_ELEMENTS, "0.1.0")
    server = serve(app, repository)
    served = next(server)
    try:
        rows = np.repeat(models.x[:8].astype("float64"), 75, axis=0)
        results: list[Any] = []
        load = threading.Thread(
            target=lambda: results.extend(
                _infer_many(served.url, rows, "/v2/models/swap/infer", 32)
            )
        )
        load.start()
        number = 1
        while load.is_alive():
            number += 1
            new = ServedDeployment("swap", "default", [version(models.sklearn, number)])
            served.call(repository.put, new)
            load.join(timeout=0.02)
        assert len(results) == len(rows)  # every request answered 200 (checked in _infer_many)
        seen = {int(r["model_version"]) for r in results}
        assert len(seen) > 2, f"the load outlived too few swaps: {seen}"
        expected = models.sklearn.predict(rows)
        assert [r["outputs"][0]["data"][0] for r in results] == expected.tolist()
    finally:
        server.close()


def test_handles_only_its_paths() -> None:
    assert InferenceApp.handles("/v2")
    assert InferenceApp.handles("/v2/models/x/infer")
    assert InferenceApp.handles("/metrics")
    assert InferenceApp.handles("/api/v1/deployments/x/predict")
    assert not InferenceApp.handles("/v2x")
    assert not InferenceApp.handles("/api/v1/deployments/x")
    assert not InferenceApp.handles("/api/v1/models")


@pytest.mark.parametrize(("retry_after", "expected"), [(None, "1"), (7, "7")])
def test_a_429_sends_exactly_one_retry_after(retry_after: int | None, expected: str) -> None:
    from aimass.api.edge import HTTPError

    app = InferenceApp(ModelRepository(), authenticate, True, MAX_BODY, MAX_ELEMENTS, "test")
    sent: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    error = HTTPError(429, "overloaded", retry_after=retry_after)
    asyncio.run(app._error(send, "rid", error, plain=False))
    headers = sent[0]["headers"]
    assert sent[0]["status"] == 429
    assert [v for k, v in headers if k == b"retry-after"] == [expected.encode()]
