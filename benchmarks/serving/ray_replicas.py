"""The Ray hop's cost per request: one small ONNX model served in-process beside the same
model behind Ray actor replicas (``resources.runner: "ray"``), each through its ``ModelRunner``.

    .venv/bin/python benchmarks/serving/ray_replicas.py [--quick] [--seconds 3] [--replicas 1]

A local Ray (2 CPUs) hosts the replica actors; this process is the server side:
its batcher closes batches (max 64 rows, 2 ms) and hands each to an actor over
Ray (``ray.get`` of one actor call per batch), against the in-process runner
predicting on its own thread. Clients are asyncio tasks each sending one-row
requests back to back, at c = 1 and c = 16, measured in alternating rounds so a
busy machine slows both alike. Prints requests/s, mean µs per request, the hop
(µs over in-process) and the load average before and after. No HTTP: the
difference is Ray's (serialisation, the owner's gRPC to the actor's worker, the
reply), not the server's.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np


def _model(folder: Path) -> tuple[Path, Any]:
    from skl2onnx import to_onnx
    from sklearn.datasets import load_breast_cancer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    x, y = load_breast_cancer(return_X_y=True)
    x = x.astype("float32")
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=500)).fit(x, y)
    path = folder / "model.onnx"
    path.write_bytes(to_onnx(model, x[:1], options={"zipmap": False}).SerializeToString())
    return path, x


async def _drive(runner: Any, rows: Any, clients: int, seconds: float) -> tuple[int, float]:
    """Requests answered and their mean latency (s) with ``clients`` concurrent senders."""
    stop = time.perf_counter() + seconds
    latencies: list[float] = []

    async def client(offset: int) -> None:
        i = offset
        while time.perf_counter() < stop:
            started = time.perf_counter()
            await runner.infer({"X": rows[i % len(rows) : i % len(rows) + 1]})
            latencies.append(time.perf_counter() - started)
            i += clients

    await asyncio.gather(*(client(k) for k in range(clients)))
    return len(latencies), statistics.fmean(latencies)


async def _bench(args: argparse.Namespace, runners: dict[str, Any], rows: Any) -> None:
    results: dict[tuple[str, int], list[tuple[float, float]]] = {}
    for clients in (1, 16):
        for runner in runners.values():  # warm up: threads, Ray workers, ONNX
            await _drive(runner, rows, clients, 0.3)
        for _ in range(args.rounds):
            for name, runner in runners.items():
                count, mean = await _drive(runner, rows, clients, args.seconds)
                results.setdefault((name, clients), []).append((count / args.seconds, mean))
    print("| path | clients | req/s (median of rounds) | µs per request | hop (µs over in-process)")
    print("| --- | ---: | ---: | ---: | ---:")
    for clients in (1, 16):
        base = statistics.median(m for _, m in results[("in-process", clients)])
        for name in runners:
            rates = [r for r, _ in results[(name, clients)]]
            means = [m for _, m in results[(name, clients)]]
            mean = statistics.median(means)
            print(
                f"| {name} | {clients} | {statistics.median(rates):,.0f} | {mean * 1e6:,.0f} | "
                f"{(mean - base) * 1e6:+,.0f}"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=3.0, help="per round and path")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--replicas", type=int, default=1, help="Ray actor replicas")
    parser.add_argument("--quick", action="store_true", help="1 s rounds, 2 rounds")
    args = parser.parse_args()
    if args.quick:
        args.seconds, args.rounds = 1.0, 2
    import ray

    from aimass.artifacts.store import ArtifactStore
    from aimass.deployments.entities import ResolvedVersion, Resources
    from aimass.plugins import default_registries
    from aimass.serving.ray_replicas import ReplicaSpec, connect, kill_actors
    from aimass.serving.runner import ModelRunner

    load = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        path, x = _model(folder)
        store = ArtifactStore(str(folder / "artifacts"))
        with path.open("rb") as src:
            stored = store.put_file("models/bench/1", src)
        flavor = default_registries().flavors.get("onnx")
        signature = flavor.inspect(path, False)
        version = ResolvedVersion(
            model="bench",
            version=1,
            weight=100.0,
            flavor="onnx",
            filename="model.onnx",
            artifact_key=stored.key,
            sha256=stored.sha256,
            trusted=False,
            signature=None if signature is None else signature.model_dump(),
        )
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
        try:
            spec = ReplicaSpec(
                0, "bench", "bench", version, Resources(cpu=1, runner="ray"), args.replicas
            )
            routed = connect(spec, store, flavor, folder / "cache")
            local = flavor.load(path, False)
            runners = {
                "in-process": ModelRunner(local, signature, 64, 2.0, name="local"),
                f"Ray replicas ({args.replicas})": ModelRunner(
                    routed, signature, 64, 2.0, name="ray"
                ),
            }
            asyncio.run(_bench(args, runners, np.ascontiguousarray(x)))
            routed.close()
            kill_actors(spec.namespace, 0)
        finally:
            ray.shutdown()
    print(f"load average (1 min) {load:.2f} → {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores")


if __name__ == "__main__":
    main()
