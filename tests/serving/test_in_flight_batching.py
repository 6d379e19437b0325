"""In-flight-aware batching over real HTTP: a batch waits for the requests still arriving."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any, cast

import httpx
import numpy as np
import orjson
import pytest
from tests.serving.conftest import AUTH, Models, Served, inference_app, serve, version

from aimass.serving import ModelRepository, ModelRunner, ServedDeployment


@pytest.fixture
def slow_delay(models: Models) -> Iterator[tuple[Served, ModelRunner]]:
    """One deployment whose batches may wait an hour: only its in-flight count closes them."""
    repository = ModelRepository()
    served = version(
        models.sklearn,
        1,
        max_delay_ms=3_600_000.0,
        in_flight=repository.in_flight("cancer", "default"),
    )
    repository.put(ServedDeployment("cancer", "default", [served]))
    for server in serve(inference_app(repository), repository):
        yield server, cast("ModelRunner", served.runner)


def _body(x: np.ndarray[Any, Any]) -> bytes:
    tensor = {
        "name": "input",
        "shape": list(x.shape),
        "datatype": "FP64",
        "data": x.ravel().tolist(),
    }
    return orjson.dumps({"inputs": [tensor]})


def test_a_batch_waits_for_a_request_whose_body_is_still_arriving(
    slow_delay: tuple[Served, ModelRunner], models: Models
) -> None:
    served, runner = slow_delay
    in_flight = served.repository.in_flight("cancer", "default")
    slow_payload = _body(models.x[:2].astype("float64"))
    first_chunk_sent = threading.Event()
    rest = threading.Event()

    def chunks() -> Iterator[bytes]:
        yield slow_payload[:50]
        first_chunk_sent.set()
        rest.wait(60)
        yield slow_payload[50:]

    answers: dict[str, httpx.Response] = {}

    def post(key: str, content: Any) -> None:
        with httpx.Client(base_url=served.url, headers=AUTH, timeout=60) as client:
            answers[key] = client.post("/v2/models/cancer/infer", content=content)

    slow = threading.Thread(target=post, args=("slow", chunks()))
    slow.start()
    assert first_chunk_sent.wait(60)
    assert _eventually(lambda: served.call(lambda: in_flight.count) == 1)
    quick = threading.Thread(target=post, args=("quick", _body(models.x[2:3].astype("float64"))))
    quick.start()
    # The quick request has joined the queue; its batch waits for the slow one still in flight.
    assert _eventually(lambda: served.call(lambda: (in_flight.count, runner.queued)) == (1, 1))
    rest.set()
    slow.join(60)
    quick.join(60)
    for key, rows in (("slow", models.x[:2]), ("quick", models.x[2:3])):
        response = answers[key]
        assert response.status_code == 200, response.text
        outputs = {o["name"]: o["data"] for o in response.json()["outputs"]}
        assert outputs["predict"] == models.sklearn.predict(rows.astype("float64")).tolist()
    assert runner.stats.batch_sizes == {2: 1}  # one batch held both
    assert runner.stats.closed_by == {"joined": 1}
    # A lone request afterwards is not held for the hour's delay: nothing else is in flight.
    with httpx.Client(base_url=served.url, headers=AUTH, timeout=60) as client:
        response = client.post("/v2/models/cancer/infer", content=_body(models.x[:1]))
        assert response.status_code == 200, response.text
        metrics = client.get("/metrics").text
    assert runner.stats.closed_by == {"joined": 2}
    assert served.call(lambda: in_flight.count) == 0
    joined = [
        line
        for line in metrics.splitlines()
        if line.startswith("aimass_inference_batches_closed_total{") and 'reason="joined"' in line
    ]
    assert joined and joined[0].endswith(" 2.0"), joined


def _eventually(check: Any, timeout: float = 30.0) -> bool:
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.01)
    return False
