"""Deployments served end to end: tritonclient, canary weights, alias moves, failures."""

from __future__ import annotations

import threading
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from tests_support import deploy, oip_json, upload, wait_state


@pytest.fixture
def cancer(http: httpx.Client, model_files: Any) -> dict[str, Any]:
    """Three versions of one model: 1 and 3 are ONNX, 2 is skops."""
    upload(http, "cancer", model_files.onnx)
    upload(http, "cancer", model_files.skops)
    upload(http, "cancer", model_files.onnx)
    return {"x": model_files.x, "y": model_files.y}


def _triton(live_server: Any) -> Any:
    import tritonclient.http as triton

    return triton.InferenceServerClient(url=live_server.url.removeprefix("http://"))


@pytest.mark.parametrize("binary", [True, False])
def test_tritonclient_against_onnx_and_sklearn_deployments(
    http: httpx.Client, live_server: Any, cancer: dict[str, Any], binary: bool
) -> None:
    import tritonclient.http as triton

    deploy(http, {"name": "onnx", "model": "cancer", "version": 1})
    deploy(http, {"name": "sk", "model": "cancer", "version": 2})
    auth = {"Authorization": f"Bearer {live_server.admin_token}"}
    client = _triton(live_server)
    assert client.is_server_live()
    assert client.is_server_ready()
    x = cancer["x"][:5]
    for name, version, datatype, array in (
        ("onnx", "1", "FP32", x.astype(np.float32)),
        ("sk", "2", "FP64", x.astype(np.float64)),
    ):
        assert client.is_model_ready(name, headers=auth)
        assert client.is_model_ready(name, model_version=version, headers=auth)
        meta = client.get_model_metadata(name, headers=auth)
        assert meta["inputs"][0]["shape"] == [-1, 30]
        assert meta["inputs"][0]["datatype"] == datatype
        input_name = meta["inputs"][0]["name"]
        tensor = triton.InferInput(input_name, list(array.shape), datatype)
        tensor.set_data_from_numpy(array, binary_data=binary)
        outputs = [triton.InferRequestedOutput(meta["outputs"][0]["name"], binary_data=binary)]
        result = client.infer(name, [tensor], model_version=version, outputs=outputs, headers=auth)
        labels = result.as_numpy(meta["outputs"][0]["name"]).ravel()
        assert labels.tolist() == cancer["y"][:5].tolist()
        assert result.get_response()["model_version"] == version
    client.close()


def test_canary_weights_split_traffic(http: httpx.Client, cancer: dict[str, Any]) -> None:
    deploy(
        http,
        {
            "name": "canary",
            "model": "cancer",
            "traffic": [{"version": 1, "weight": 90}, {"version": 3, "weight": 10}],
        },
    )
    body = oip_json(cancer["x"][:1], "X", "FP32")
    counts: Counter[str] = Counter()
    for _ in range(1000):
        response = http.post("/v2/models/canary/infer", json=body)
        assert response.status_code == 200, response.text
        counts[response.json()["model_version"]] += 1
    assert sum(counts.values()) == 1000
    assert 850 <= counts["1"] <= 950, counts
    assert 50 <= counts["3"] <= 150, counts


def test_moving_the_alias_switches_without_a_failed_request(
    http: httpx.Client, live_server: Any, cancer: dict[str, Any]
) -> None:
    http.put("/api/v1/models/cancer/aliases/production", json={"version": 1})
    deploy(http, {"name": "prod", "model": "cancer", "alias": "production"})
    body = oip_json(cancer["x"][:1], "X", "FP32")
    stop = threading.Event()
    seen: list[str] = []
    failures: list[str] = []

    def load() -> None:
        with httpx.Client(
            base_url=live_server.url,
            headers={"Authorization": f"Bearer {live_server.admin_token}"},
        ) as c:
            while not stop.is_set():
                r = c.post("/v2/models/prod/infer", json=body)
                if r.status_code != 200:
                    failures.append(r.text)
                else:
                    seen.append(r.json()["model_version"])

    threads = [threading.Thread(target=load) for _ in range(4)]
    for t in threads:
        t.start()
    try:
        while len(seen) < 50:
            threading.Event().wait(0.01)
        http.put("/api/v1/models/cancer/aliases/production", json={"version": 3})
        deadline = 200
        while deadline and (not seen or seen[-1] != "3"):
            threading.Event().wait(0.05)
            deadline -= 1
        count = len(seen)
        while len(seen) < count + 50:
            threading.Event().wait(0.01)
    finally:
        stop.set()
        for t in threads:
            t.join()
    assert failures == []
    assert seen[0] == "1" and seen[-1] == "3"
    switch = seen.index("3")
    assert set(seen[switch + 20 :]) == {"3"}


def test_a_model_that_fails_to_load_leaves_the_others_serving(
    http: httpx.Client, cancer: dict[str, Any], settings: Any
) -> None:
    deploy(http, {"name": "good", "model": "cancer", "version": 1})
    # Corrupt version 2's stored bytes: its deployment must fail with a reason.
    version = http.get("/api/v1/models/cancer/versions/2").json()
    stored = [p for p in Path(settings.resolved_artifacts).rglob("*") if p.is_file()]
    target = next(p for p in stored if _sha(p) == version["sha256"])
    original = target.read_bytes()
    target.write_bytes(b"corrupt" + original[7:])
    response = http.post(
        "/api/v1/deployments", json={"name": "bad", "model": "cancer", "version": 2}
    )
    assert response.status_code == 201
    failed = wait_state(http, "bad", "failed")
    assert "checksum" in failed["replica_status"][0]["reason"]
    ready = http.get("/v2/models/bad/ready")
    assert ready.status_code != 200
    infer = http.post("/v2/models/bad/infer", json=oip_json(cancer["x"][:1]))
    assert infer.status_code == 503
    assert "error" in infer.json()
    good = http.post("/v2/models/good/infer", json=oip_json(cancer["x"][:2]))
    assert good.status_code == 200
    assert good.json()["outputs"][0]["shape"][0] == 2
    # Once the bytes are sound again, the retry (with backoff) brings it up.
    target.write_bytes(original)
    wait_state(http, "bad", "ready", timeout=15)
    assert (
        http.post("/api/v1/deployments/bad/predict", json={"inputs": [[0.0] * 30]}).status_code
        == 200
    )


def _sha(path: Path) -> str:
    import hashlib

    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_many_models_load_and_unload_through_the_api(
    http: httpx.Client, cancer: dict[str, Any]
) -> None:
    for i in range(4):
        deploy(http, {"name": f"m{i}", "model": "cancer", "version": 1})
    body = oip_json(cancer["x"][:3])
    for i in range(4):
        assert http.post(f"/v2/models/m{i}/infer", json=body).status_code == 200
    assert http.delete("/api/v1/deployments/m0").status_code == 204
    for _ in range(100):
        if http.post("/v2/models/m0/infer", json=body).status_code == 404:
            break
        threading.Event().wait(0.05)
    else:
        raise AssertionError("m0 was not unloaded")
    assert http.post("/v2/models/m1/infer", json=body).status_code == 200


def test_plain_predict_route(http: httpx.Client, cancer: dict[str, Any]) -> None:
    deploy(http, {"name": "sk", "model": "cancer", "version": 2})
    rows = cancer["x"][:4].tolist()
    response = http.post("/api/v1/deployments/sk/predict", json={"inputs": rows})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["predictions"] == cancer["y"][:4].tolist()
    assert len(body["probabilities"]) == 4
    assert http.post("/api/v1/deployments/nope/predict", json={"inputs": rows}).status_code == 404
    bad = http.post("/api/v1/deployments/sk/predict", json={"inputs": [[1.0, 2.0]]})
    assert bad.status_code == 400
    assert "error" in bad.json()


def test_metrics_count_requests_per_model_and_version(
    http: httpx.Client, cancer: dict[str, Any]
) -> None:
    deploy(http, {"name": "onnx", "model": "cancer", "version": 1})
    for _ in range(3):
        http.post("/v2/models/onnx/infer", json=oip_json(cancer["x"][:1]))
    text = http.get("/metrics").text
    lines = [
        line
        for line in text.splitlines()
        if line.startswith("aimass_inference_requests_total{") and 'deployment="onnx"' in line
    ]
    assert lines and sum(float(line.rsplit(" ", 1)[1]) for line in lines) >= 3
    assert "aimass_inference_batch_size" in text
