"""Autoscaling on one node: a slow ONNX MLP served by one fixed runner process beside the same
model autoscaled (1..3 runner processes), under the same client crowd, alternating.

    .venv/bin/python benchmarks/serving/autoscale.py [--quick] [--seconds 20] [--rounds 2]

One ``aimass server`` (``--workers``, default 1) holds two deployments of one
version: ``fixed`` (``runner: process``, one replica) and ``scaled`` (the same
plus ``autoscaling`` min 1, max 3, target 2 ongoing requests, upscale 1 s,
downscale 5 s). Each round runs the crowd (``--crowd`` clients, each sending its
next 32-row request once answered) on ``fixed`` for ``--seconds``, then on
``scaled``: the time from the crowd's start until the node runs 3 replicas, then
``--seconds`` at 3; then waits for ``scaled`` to come back to 1. Prints req/s and
latency percentiles of each, the ratio, and the load average before and after.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np

SCALING = {
    "min_replicas": 1,
    "max_replicas": 3,
    "target_ongoing_requests": 2,
    "upscale_delay_s": 1.0,
    "downscale_delay_s": 5.0,
    "look_back_period_s": 2.0,
}


def slow_mlp(path: Path, inputs: int = 30, width: int = 2048, layers: int = 4) -> Path:
    """An ONNX MLP (MatMul + Relu) of random weights: ~2 ms a row on one loaded core, so a
    request's time goes to the model rather than to HTTP."""
    from onnx import TensorProto, helper, numpy_helper, save

    rng = np.random.default_rng(0)
    nodes, weights, previous, size = [], [], "X", inputs
    for i in range(layers):
        w = (rng.standard_normal((size, width)) / np.sqrt(size)).astype("float32")
        weights.append(numpy_helper.from_array(w, f"W{i}"))
        nodes += [
            helper.make_node("MatMul", [previous, f"W{i}"], [f"h{i}"]),
            helper.make_node("Relu", [f"h{i}"], [f"r{i}"]),
        ]
        previous, size = f"r{i}", width
    out = (rng.standard_normal((size, 2)) / np.sqrt(size)).astype("float32")
    weights.append(numpy_helper.from_array(out, "Wout"))
    nodes.append(helper.make_node("MatMul", [previous, "Wout"], ["y"]))
    graph = helper.make_graph(
        nodes,
        "slow_mlp",
        [helper.make_tensor_value_info("X", TensorProto.FLOAT, ["N", inputs])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 2])],
        weights,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    save(model, str(path))
    return path


class Crowd:
    """Clients in a thread of their own; each answer's time and latency is kept."""

    def __init__(self, url: str, name: str, clients: int) -> None:
        rows = np.ones((32, 30), dtype="float32")
        self.body = {"inputs": [{"name": "X", "shape": [32, 30], "datatype": "FP32",
                                 "data": rows.ravel().tolist()}]}  # fmt: skip
        self.url, self.name, self.clients = url, name, clients
        self.answers: list[tuple[float, float]] = []  # (when answered, seconds taken)
        self.failed = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=lambda: asyncio.run(self._run()), daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=120)

    async def _run(self) -> None:
        limits = httpx.Limits(max_connections=self.clients)
        async with httpx.AsyncClient(base_url=self.url, timeout=120, limits=limits) as http:
            await asyncio.gather(*(self._client(http) for _ in range(self.clients)))

    async def _client(self, http: httpx.AsyncClient) -> None:
        path = f"/v2/models/{self.name}/infer"
        while not self._stop.is_set():
            started = time.monotonic()
            answer = await http.post(path, json=self.body)
            if answer.status_code == 200:
                self.answers.append((time.monotonic(), time.monotonic() - started))
            else:
                self.failed += 1

    def figures(self, since: float, until: float) -> dict[str, float]:
        """req/s and latency percentiles (ms) of the answers in [since, until]."""
        taken = sorted(s for at, s in self.answers if since <= at <= until)
        if not taken:
            return {"rps": 0.0, "p50": float("nan"), "p99": float("nan")}
        return {
            "rps": len(taken) / (until - since),
            "p50": 1000 * taken[len(taken) // 2],
            "p99": 1000 * taken[min(len(taken) - 1, int(len(taken) * 0.99))],
        }


def replicas(http: httpx.Client, name: str) -> set[tuple[Any, Any]]:
    status = http.get(f"/api/v1/deployments/{name}").json()["replica_status"]
    return {(s.get("replicas"), s.get("desired_replicas")) for s in status}


def wait_for(http: httpx.Client, name: str, count: int, timeout: float = 300) -> float:
    started = time.monotonic()
    while replicas(http, name) != {(count, count)}:
        if time.monotonic() - started > timeout:
            raise SystemExit(f"{name} did not reach {count} replicas in {timeout:.0f} s")
        time.sleep(0.1)
    return time.monotonic() - started


def start_server(tmp: Path, workers: int) -> tuple[subprocess.Popen[bytes], str]:
    from aimass.config import Settings, settings_env

    port = 18000 + os.getpid() % 2000
    settings = Settings(
        home=tmp / "home", database_url=f"sqlite:///{tmp / 'aimass.db'}",
        artifacts=str(tmp / "artifacts"), port=port, workers=workers, auth=False, jobs=False,
    )  # fmt: skip
    process = subprocess.Popen(
        [sys.executable, "-m", "aimass.cli", "server"],
        env={**os.environ, **settings_env(settings)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 300
    while True:
        try:
            if httpx.get(f"{url}/v2/health/live").status_code == 200:
                return process, url
        except httpx.HTTPError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            raise SystemExit("the server did not start")
        time.sleep(0.3)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--crowd", type=int, default=16)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--quick", action="store_true", help="8 s phases, one round")
    args = parser.parse_args()
    if args.quick:
        args.seconds, args.rounds = 8.0, 1
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory() as folder:
        tmp = Path(folder)
        process, url = start_server(tmp, args.workers)
        try:
            http = httpx.Client(base_url=url, timeout=120)
            with slow_mlp(tmp / "mlp.onnx").open("rb") as model:
                uploaded = http.post("/api/v1/models/mlp/versions", files={"file": model})
            uploaded.raise_for_status()
            for name, extra in (("fixed", {}), ("scaled", {"autoscaling": SCALING})):
                spec = {"model": "mlp", "name": name, "version": 1,
                        "resources": {"runner": "process"}, **extra}  # fmt: skip
                http.post("/api/v1/deployments", json=spec).raise_for_status()
                if extra:
                    wait_for(http, name, 1)
            while http.get("/api/v1/deployments/fixed").json()["state"] != "ready":
                time.sleep(0.2)
            rows: list[tuple[str, dict[str, float]]] = []
            ups: list[float] = []
            failed = 0
            for _ in range(args.rounds):
                crowd = Crowd(url, "fixed", args.crowd)
                crowd.start()
                begin = time.monotonic()
                time.sleep(args.seconds)
                crowd.stop()
                failed += crowd.failed
                rows.append(("fixed, 1 runner process", crowd.figures(begin, time.monotonic())))
                crowd = Crowd(url, "scaled", args.crowd)
                crowd.start()
                ups.append(wait_for(http, "scaled", 3))
                begin = time.monotonic()
                time.sleep(args.seconds)
                crowd.stop()
                failed += crowd.failed
                rows.append(("autoscaled, at 3", crowd.figures(begin, time.monotonic())))
                wait_for(http, "scaled", 1)
        finally:
            process.terminate()
            process.wait(timeout=60)
    load_after = os.getloadavg()
    print(f"load average (1/5/15 min) before {load_before[0]:.1f}/{load_before[1]:.1f}/"
          f"{load_before[2]:.1f}, after {load_after[0]:.1f}/{load_after[1]:.1f}/"
          f"{load_after[2]:.1f}; {os.cpu_count()} cores; crowd {args.crowd}, "
          f"{args.workers} worker(s), {args.seconds:g} s phases")  # fmt: skip
    print("| deployment | req/s | p50 ms | p99 ms |")
    print("| --- | ---: | ---: | ---: |")
    for label, f in rows:
        print(f"| {label} | {f['rps']:.1f} | {f['p50']:.0f} | {f['p99']:.0f} |")
    fixed = statistics.median(f["rps"] for label, f in rows if label.startswith("fixed"))
    scaled = statistics.median(f["rps"] for label, f in rows if label.startswith("auto"))
    print(f"autoscaled / fixed req/s: {scaled / fixed:.2f}x; 1 -> 3 replicas after the crowd "
          f"started: {', '.join(f'{u:.1f} s' for u in ups)}")  # fmt: skip
    print(f"failed requests: {failed}")


if __name__ == "__main__":
    main()
