"""Ray actor replicas (``resources.runner: "ray"``) from one server: the hop, and rows/s.

    .venv/bin/python benchmarks/serving/ray_replicas.py [--part hop|throughput|both] [--quick]

``--part throughput`` (see ``throughput``): a compute-bound model behind 1 and 2
replicas of 1 CPU each, with one batch in flight (the old path) and with
``batches_in_flight`` (2 per live replica), rows/s side by side in alternating rounds.

``--part hop`` (the default part before; ``--replicas`` for its actor count): one
small ONNX model served in-process beside the same model behind Ray actor
replicas, each through its ``ModelRunner``.

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
    parser.add_argument("--part", choices=("hop", "throughput", "both"), default="both")
    parser.add_argument("--seconds", type=float, default=3.0, help="per round and path")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--replicas", type=int, default=1, help="Ray actor replicas (hop)")
    parser.add_argument("--quick", action="store_true", help="1 s rounds, 2 rounds")
    args = parser.parse_args()
    if args.quick:
        args.seconds, args.rounds = 1.0, 2
    if args.part in ("hop", "both"):
        hop(args)
    if args.part in ("throughput", "both"):
        throughput(args)


def _stored(folder: Path, path: Path, flavor_name: str) -> tuple[Any, Any, Any, Any]:
    """The model file as a stored version: (store, flavor, signature, ResolvedVersion)."""
    from aimass.artifacts.store import ArtifactStore
    from aimass.deployments.entities import ResolvedVersion
    from aimass.plugins import default_registries

    store = ArtifactStore(str(folder / "artifacts"))
    with path.open("rb") as src:
        stored = store.put_file(f"models/{path.stem}/1", src)
    flavor = default_registries().flavors.get(flavor_name)
    signature = flavor.inspect(path, False)
    version = ResolvedVersion(
        model=path.stem, version=1, weight=100.0, flavor=flavor_name, filename=path.name,
        artifact_key=stored.key, sha256=stored.sha256, trusted=False,
        signature=None if signature is None else signature.model_dump(),
    )  # fmt: skip
    return store, flavor, signature, version


def hop(args: argparse.Namespace) -> None:
    """The Ray hop's cost per request against the same model in-process."""
    import ray

    from aimass.deployments.entities import Resources
    from aimass.serving.ray_replicas import ReplicaSpec, connect, kill_actors
    from aimass.serving.runner import ModelRunner

    load = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        path, x = _model(folder)
        store, flavor, signature, version = _stored(folder, path, "onnx")
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


# -- rows/s from one server: 1 and 2 replicas, one batch in flight or several -----------

#: Rows per request, concurrent clients, and requests per batch (64 rows) in ``throughput``.
ROWS, CLIENTS, BATCH = 8, 32, 8
#: The skops model's input (FP64 rows of 30 features).
INPUT = "input"


def _heavy_model(folder: Path) -> tuple[Path, Any]:
    """A compute-bound model: an MLP (30 → 2048 → 2048 → 2) as skops, ~0.5 ms a row on one
    thread (Ray gives a 1-CPU actor ``OMP_NUM_THREADS=1``, so BLAS runs one thread there)."""
    import warnings

    import skops.io
    from sklearn.datasets import load_breast_cancer
    from sklearn.neural_network import MLPClassifier

    x, y = load_breast_cancer(return_X_y=True)
    x = x.astype("float32")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # one iteration: the weights' values do not matter
        model = MLPClassifier(hidden_layer_sizes=(2048, 2048), max_iter=1).fit(x[:64], y[:64])
    model._optimizer = None  # the Adam state: not needed to predict, and not a trusted type
    path = folder / "mlp.skops"
    skops.io.dump(model, path)
    return path, x.astype("float64")


def _replica_s(actors: list[Any]) -> tuple[float, float]:
    """The replicas' CPU seconds (user + system) and seconds busy in ``call`` so far."""
    import psutil
    import ray

    cpu = busy = 0.0
    for info in ray.get([actor.info.remote() for actor in actors]):
        times = psutil.Process(info["pid"]).cpu_times()
        cpu += times.user + times.system
        busy += info["busy_s"]
    return cpu, busy


async def _rows_per_s(
    runner: Any, rows: Any, seconds: float, actors: list[Any]
) -> tuple[float, float, float, float]:
    """Rows answered per second with ``CLIENTS`` senders of ``ROWS``-row requests, this
    process's CPU share meanwhile (clients, batcher, Ray calls: the server side), and the
    replicas' CPU (cores) and busy time (replicas' worth) meanwhile."""
    stop = time.perf_counter() + seconds
    answered = 0

    async def client(offset: int) -> None:
        nonlocal answered
        i = offset * ROWS
        while time.perf_counter() < stop:
            start = i % (len(rows) - ROWS)
            await runner.infer({INPUT: rows[start : start + ROWS]}, ("predict",))
            answered += ROWS
            i += CLIENTS * ROWS

    cpu, wall, (replica_cpu, busy) = time.process_time(), time.perf_counter(), _replica_s(actors)
    await asyncio.gather(*(client(k) for k in range(CLIENTS)))
    wall = time.perf_counter() - wall
    own = (time.process_time() - cpu) / wall
    replica_cpu_after, busy_after = _replica_s(actors)
    cores = (replica_cpu_after - replica_cpu) / wall
    return answered / wall, own, cores, (busy_after - busy) / wall


async def _compare(
    args: argparse.Namespace, runners: dict[str, tuple[Any, list[Any]]], rows: Any
) -> None:
    results: dict[str, list[tuple[float, ...]]] = {name: [] for name in runners}
    for runner, actors in runners.values():  # warm up: threads, Ray workers, BLAS
        await _rows_per_s(runner, rows, 0.5, actors)
    for _ in range(args.rounds):
        for name, (runner, actors) in runners.items():
            results[name].append(await _rows_per_s(runner, rows, args.seconds, actors))
    base = statistics.median(r[0] for r in results[next(iter(runners))])
    print(f"| path ({CLIENTS} clients, {ROWS} rows each) | rows/s (median) | ratio to first row "
          "| server process CPU | replicas busy | replicas' CPU (cores) "
          "| rows per replica CPU-s | mean batch (requests)")  # fmt: skip
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---:")
    for name, (runner, _) in runners.items():
        rate, cpu, cores, busy = (statistics.median(r[i] for r in results[name]) for i in range(4))
        stats = runner.stats
        mean = stats.requests / max(1, stats.batches)
        print(
            f"| {name} | {rate:,.0f} | {rate / base:.2f} | {cpu * 100:.0f} % | {busy:.2f} "
            f"| {cores:.2f} | {rate / max(cores, 1e-9):,.0f} | {mean:.1f}"
        )


def throughput(args: argparse.Namespace) -> None:
    """Rows/s of a compute-bound model from one server: 1 vs 2 replicas of 1 CPU each."""
    import ray

    from aimass.deployments.entities import Resources
    from aimass.serving.ray_replicas import ReplicaSpec, connect, kill_actors
    from aimass.serving.runner import ModelRunner

    load = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        path, x = _heavy_model(folder)
        store, flavor, signature, version = _stored(folder, path, "sklearn")
        # Three logical CPUs: the 1-replica and the 2-replica deployments both stay placed
        # (an idle actor costs no CPU), so the rounds can alternate between them.
        ray.init(num_cpus=3, include_dashboard=False, log_to_driver=False)
        try:
            routers = []
            for deployment, replicas in ((1, 1), (2, 2)):
                resources = Resources(cpu=1, runner="ray")
                spec = ReplicaSpec(
                    deployment, "bench", f"mlp{replicas}", version, resources, replicas
                )
                routers.append(connect(spec, store, flavor, folder / "cache"))
            one, two = routers
            deadline = time.monotonic() + 60  # the second replica answers a little later
            while two.batches_in_flight() < 4 and time.monotonic() < deadline:
                time.sleep(0.2)
            print(f"batches in flight: 1 replica {one.batches_in_flight()}, "
                  f"2 replicas {two.batches_in_flight()}")  # fmt: skip

            def runner(router: Any, concurrency: Any, name: str) -> ModelRunner:
                return ModelRunner(
                    router, signature, BATCH, 2.0, name=name, max_concurrent_batches=concurrency
                )

            actors = {
                id(router): [
                    ray.get_actor(name, namespace=router.spec.namespace)
                    for name in router.spec.actor_names()
                ]
                for router in (one, two)
            }
            runners = {
                "1 replica, 1 batch in flight": (runner(one, 1, "r1b1"), actors[id(one)]),
                "1 replica, 2 in flight": (
                    runner(one, one.batches_in_flight, "r1"),
                    actors[id(one)],
                ),
                "2 replicas, 1 batch in flight (before)": (runner(two, 1, "r2b1"), actors[id(two)]),
                "2 replicas, 4 in flight": (
                    runner(two, two.batches_in_flight, "r2"),
                    actors[id(two)],
                ),
            }
            asyncio.run(_compare(args, runners, np.ascontiguousarray(x)))
            for router, deployment in ((one, 1), (two, 2)):
                router.close()
                kill_actors(router.spec.namespace, deployment)
        finally:
            ray.shutdown()
    print(f"load average (1 min) {load:.2f} → {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores")


if __name__ == "__main__":
    main()
