"""What the inference path's per-request checks cost, in microseconds, with no HTTP around them.

    .venv/bin/python benchmarks/serving/edge_cost.py [--requests 20000] [--repeats 5]

Prints two lines: (1) the HTTP edge guard (``api.middleware.RequestGuard``: Host,
Origin and content-type checks, body caps, security headers) around a trivial
ASGI app, against the same app bare; (2) the missing-value and column check of
a one-row JSON predict request (``serving.protocol.parse_predict``), with the
check on and off. Each figure is the best of ``--repeats`` loops; compare runs on
the same machine, not across machines.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

import orjson

from aimass.api.middleware import EdgePolicy, RequestGuard
from aimass.flavors.signature import Signature, TensorSpec
from aimass.serving.protocol import parse_predict

Asgi = Callable[[dict[str, Any], Any, Any], Awaitable[None]]

HEADERS = [
    (b"host", b"127.0.0.1:8080"),
    (b"content-type", b"application/json"),
    (b"content-length", b"2"),
    (b"authorization", b"Bearer x"),
    (b"accept", b"*/*"),
]


async def _app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    await receive()
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"{}"})


async def _receive() -> dict[str, Any]:
    return {"type": "http.request", "body": b"{}", "more_body": False}


async def _send(_message: Any) -> None:
    return None


async def _per_request(target: Asgi, requests: int, repeats: int) -> float:
    scope = {
        "type": "http",
        "method": "POST",
        "path": "/v2/models/m/infer",
        "headers": HEADERS,
        "query_string": b"",
    }
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        for _ in range(requests):
            await target(dict(scope), _receive, _send)
        best = min(best, (time.perf_counter() - started) / requests)
    return best


def edge_cost_us(requests: int, repeats: int) -> tuple[float, float]:
    """Microseconds per request: the bare app, and the same app behind the edge guard."""
    policy = EdgePolicy(frozenset({b"127.0.0.1"}), 10, 10)
    guarded = RequestGuard(_app, policy, lambda path: path.startswith("/v2"))

    async def measure() -> tuple[float, float]:
        await _per_request(guarded, 1000, 1)  # warm-up
        bare = await _per_request(_app, requests, repeats)
        edge = await _per_request(guarded, requests, repeats)
        return bare * 1e6, edge * 1e6

    return asyncio.run(measure())


def input_check_cost_us(requests: int, repeats: int) -> tuple[float, float]:
    """Microseconds to parse a one-row predict request: without, then with, the input check."""
    names = ["sepal_length", "sepal_width", "petal_length", "petal_width"]
    checked = Signature(
        inputs=[TensorSpec(name="input", datatype="FP64", shape=[-1, 4], columns=names)]
    )
    unchecked = checked.model_copy(update={"allows_missing": True})
    body = orjson.dumps({"inputs": [[5.1, 3.5, 1.4, 0.2]]})

    def per_call(signature: Signature) -> float:
        best = float("inf")
        for _ in range(repeats):
            started = time.perf_counter()
            for _ in range(requests):
                parse_predict(body, signature, 10_000)
            best = min(best, (time.perf_counter() - started) / requests)
        return best * 1e6

    return per_call(unchecked), per_call(checked)


def main() -> None:
    """Print both figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=20_000)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    bare, edge = edge_cost_us(args.requests, args.repeats)
    print(f"edge guard: {bare:.2f} µs bare, {edge:.2f} µs guarded, +{edge - bare:.2f} µs a request")
    off, on = input_check_cost_us(args.requests, args.repeats)
    print(f"input check, one row: {off:.2f} µs off, {on:.2f} µs on, +{on - off:.2f} µs a request")


if __name__ == "__main__":
    main()
