"""The frameworkless yardstick: the least an ASGI app can do for one /v2 infer request.

A plain ASGI callable (no framework, no middleware) that still does what a serving
request must: a bearer token checked against a hashed table, a Prometheus counter and
latency histogram, the KServe v2 JSON body parsed with orjson, ONNX Runtime's predict on
the one row, and the v2 answer encoded with orjson. Any ASGI server runs it:

    YARDSTICK_MODEL=model.onnx YARDSTICK_TOKEN=secret \
      uvicorn --loop uvloop --http httptools --no-access-log yardstick:app
    YARDSTICK_MODEL=model.onnx YARDSTICK_TOKEN=secret \
      granian --interface asgi --runtime-mode st yardstick:app

What aimass's server does beyond it (request ids, the edge's checks, the batcher,
versions, limits) is what the gap between the two costs.
"""

from __future__ import annotations

import hashlib
import os
import time
from typing import Any

import numpy as np
import onnxruntime as ort
import orjson
from prometheus_client import Counter, Histogram

_session = ort.InferenceSession(
    os.environ["YARDSTICK_MODEL"],
    sess_options=ort.SessionOptions(),
    providers=["CPUExecutionProvider"],
)
_input = _session.get_inputs()[0].name
_outputs = [o.name for o in _session.get_outputs()]
_tokens = {hashlib.sha256(os.environ["YARDSTICK_TOKEN"].encode()).digest(): "admin"}
_requests = Counter("yardstick_requests_total", "answered", ["status"])
_ok = _requests.labels("200")
_latency = Histogram("yardstick_request_seconds", "latency")
_JSON = [(b"content-type", b"application/json")]


async def _send_json(send: Any, status: int, body: bytes) -> None:
    headers = [*_JSON, (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """Answer POST .../infer with the model's outputs; 401 without the token."""
    if scope["type"] != "http":
        if scope["type"] == "lifespan":
            while (await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
        return
    started = time.perf_counter()
    authorization = b""
    for key, value in scope["headers"]:
        if key == b"authorization":
            authorization = value
    if hashlib.sha256(authorization[7:]).digest() not in _tokens:
        await _send_json(send, 401, b'{"error":"unauthenticated"}')
        return
    body = b""
    more = True
    while more:
        message = await receive()
        body += message.get("body", b"")
        more = message.get("more_body", False)
    request = orjson.loads(body)
    tensor = request["inputs"][0]
    x = np.asarray(tensor["data"], dtype=np.float32).reshape(tensor["shape"])
    label, proba = _session.run(_outputs, {_input: x})
    answer = {
        "model_name": "yardstick",
        "outputs": [
            {"name": "label", "datatype": "INT64", "shape": list(label.shape), "data": label},
            {
                "name": "probabilities",
                "datatype": "FP32",
                "shape": list(proba.shape),
                "data": proba,
            },
        ],
    }
    await _send_json(send, 200, orjson.dumps(answer, option=orjson.OPT_SERIALIZE_NUMPY))
    _ok.inc()
    _latency.observe(time.perf_counter() - started)
