"""A three-member soft-vote ensemble against one model: requests/s at c=64 and per-member cost.

    .venv/bin/python benchmarks/serving/ensemble.py [--seconds 5] [--concurrency 64]
    .venv/bin/python benchmarks/serving/ensemble.py --http [--seconds 10] [--rounds 3]

``--http``: a real ``aimass server`` (one worker, auth on) pinned to core 0 serves the
single model and the ensemble as two deployments; wrk (``apt-get install wrk``) on
core 1 sends one-row JSON requests at c=64 to each, alternating, ``--rounds`` times;
prints the median requests/s and p50/p99 of each and the per-member cost.

Without ``--http``, in-process, no HTTP (the HTTP edge is the same for both; see edge_cost.py):
64 coroutines send one-row requests for ``--seconds`` to (1) a ``ModelRunner``
over a tiny ONNX logistic regression (iris, 4 features, 3 classes) and (2) an
``EnsembleRunner`` (soft vote) over three such models: requests batched once,
each member run on the merged batch. Prints requests/s, microseconds a request, the per-member cost
inside the ensemble (``(t_ensemble - t_single) / 3``: what each extra member
adds) and the fuse step alone. Pin it to one core with ``taskset -c 0`` for the
one-core figure; compare runs on the same machine.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from aimass.flavors.onnx import OnnxFlavor
from aimass.fusion.combiners import SoftVote
from aimass.serving.ensemble import EnsembleMember, EnsembleRunner
from aimass.serving.runner import ModelRunner


def _models(folder: Path) -> list[Path]:
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import FloatTensorType
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression

    x, y = load_iris(return_X_y=True)
    paths = []
    for i, c in enumerate((0.1, 1.0, 10.0)):
        model = LogisticRegression(C=c, max_iter=500).fit(x.astype(np.float32), y)
        onx = convert_sklearn(
            model,
            initial_types=[("x", FloatTensorType([None, 4]))],
            options={id(model): {"zipmap": False}},
            target_opset=17,
        )
        path = folder / f"m{i}.onnx"
        path.write_bytes(onx.SerializeToString())
        paths.append(path)
    return paths


def _runner(path: Path, batch: int = 64) -> ModelRunner:
    predictor = OnnxFlavor().load(path, False)
    return ModelRunner(predictor, predictor.signature, batch, 2.0, name=path.stem)


async def _drive(infer: Any, seconds: float, concurrency: int) -> float:
    row = {"x": np.array([[5.1, 3.5, 1.4, 0.2]], dtype=np.float32)}
    done = 0
    stop = time.perf_counter() + seconds

    async def client() -> None:
        nonlocal done
        while time.perf_counter() < stop:
            await infer(row)
            done += 1

    started = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(concurrency)))
    return done / (time.perf_counter() - started)


async def main_async(seconds: float, concurrency: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        paths = _models(Path(tmp))
        single = _runner(paths[0])
        await _drive(single.infer, 0.5, concurrency)  # warm up
        single_rps = await _drive(single.infer, seconds, concurrency)
        await single.close()
        members = [EnsembleMember(p.stem, 1, 1.0, _runner(p, batch=1)) for p in paths]
        ensemble = EnsembleRunner(members, strategy=SoftVote(), max_batch_size=64)
        await _drive(ensemble.infer, 0.5, concurrency)
        ensemble_rps = await _drive(ensemble.infer, seconds, concurrency)
        await ensemble.close()
    probas = [np.full((1, 3), 1 / 3) for _ in range(3)]
    loops = 20_000
    started = time.perf_counter()
    for _ in range(loops):
        SoftVote().fuse(probas, (1.0, 1.0, 1.0))
    fuse_us = (time.perf_counter() - started) / loops * 1e6
    t1, t3 = 1e6 / single_rps, 1e6 / ensemble_rps
    cpus = len(os.sched_getaffinity(0))
    print(f"c={concurrency}, {seconds:g} s each, {cpus} core(s), load {os.getloadavg()[0]:.1f}")
    print(f"single model          : {single_rps:8.0f} req/s  ({t1:6.1f} us a request)")
    print(f"3-member soft vote    : {ensemble_rps:8.0f} req/s  ({t3:6.1f} us a request)")
    print(f"per member in ensemble: {(t3 - t1) / 3:6.1f} us  (fuse step alone {fuse_us:.1f} us)")


HERE = Path(__file__).resolve().parent
BIN = Path(sys.executable).parent


def _wrk(url: str, token: str, body: Path, seconds: float, concurrency: int) -> dict[str, float]:
    argv = ["taskset", "-c", "1", "wrk", "-t1", f"-c{concurrency}", f"-d{round(seconds)}s"]
    argv += ["--timeout", "10s", "--latency", "-s", str(HERE / "loadgen.lua"), url]
    env = {**os.environ, "BENCH_BODY": str(body), "BENCH_TOKEN": token}
    out = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=seconds + 60)
    line = next(x for x in out.stdout.splitlines() if x.startswith("BENCH_JSON "))
    raw = json.loads(line.removeprefix("BENCH_JSON "))
    failed = raw["errors"]["status"] + raw["errors"]["timeout"] + raw["errors"]["read"]
    if failed:
        raise SystemExit(f"{url}: {failed} failed requests: {raw['errors']}")
    return {
        "rps": raw["requests"] / (raw["duration_us"] / 1e6),
        "p50_ms": raw["latency_us"]["p50"] / 1000,
        "p99_ms": raw["latency_us"]["p99"] / 1000,
    }


def main_http(seconds: float, concurrency: int, rounds: int) -> None:
    import socket

    import aimass

    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp) / "home"
        paths = _models(Path(tmp))
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        argv = ["taskset", "-c", "0", str(BIN / "aimass"), "server", "--host", "127.0.0.1"]
        argv += ["--port", str(port), "--workers", "1", "--home", str(home), "--no-demo"]
        server = subprocess.Popen(
            argv,
            env={**os.environ, "AIMASS_HOME": str(home)},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            url = f"http://127.0.0.1:{port}"
            deadline = time.monotonic() + 120
            while not (home / "token").is_file() and time.monotonic() < deadline:
                time.sleep(0.1)
            token = (home / "token").read_text().strip()
            with aimass.Client(url=url, token=token) as client:
                deadline = time.monotonic() + 120
                while True:
                    try:
                        for i, path in enumerate(paths):
                            client.models.upload(f"m{i}", path)
                        break
                    except Exception:
                        if time.monotonic() > deadline:
                            raise
                        time.sleep(0.2)
                client.deployments.create("m0", name="single", version=1)
                traffic = [{"model": f"m{i}", "version": 1, "weight": 1.0} for i in range(3)]
                client.deployments.create(
                    "m0", name="vote", traffic=traffic, combiner={"strategy": "soft_vote"}
                )
                client.deployments.wait_ready("single", timeout=120)
                client.deployments.wait_ready("vote", timeout=120)
            body = Path(tmp) / "body.json"
            row = {"name": "x", "datatype": "FP32", "shape": [1, 4], "data": [5.1, 3.5, 1.4, 0.2]}
            body.write_text(json.dumps({"inputs": [row]}))
            results: dict[str, list[dict[str, float]]] = {"single": [], "vote": []}
            for name in results:  # warm-up
                _wrk(f"{url}/v2/models/{name}/infer", token, body, 2, concurrency)
            for _ in range(rounds):
                for name, runs in results.items():
                    runs.append(
                        _wrk(f"{url}/v2/models/{name}/infer", token, body, seconds, concurrency)
                    )
        finally:
            server.terminate()
            server.wait(30)
    med = {
        name: {k: statistics.median(r[k] for r in runs) for k in ("rps", "p50_ms", "p99_ms")}
        for name, runs in results.items()
    }
    t1, t3 = 1e6 / med["single"]["rps"], 1e6 / med["vote"]["rps"]
    print(
        f"HTTP, wrk c={concurrency}, server on core 0, {rounds} x {seconds:g} s each (median), "
        f"load {os.getloadavg()[0]:.1f}"
    )
    for label, name in (("single model", "single"), ("3-member soft vote", "vote")):
        m = med[name]
        print(
            f"{label:<22}: {m['rps']:8.0f} req/s  p50 {m['p50_ms']:.2f} ms  "
            f"p99 {m['p99_ms']:.2f} ms"
        )
    print(f"per member in ensemble: {(t3 - t1) / 2:6.1f} us (two extra members over one)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--http", action="store_true", help="through a real server and wrk")
    parser.add_argument("--rounds", type=int, default=3, help="--http: alternating runs each")
    args = parser.parse_args()
    if args.http:
        main_http(args.seconds, args.concurrency, args.rounds)
    else:
        asyncio.run(main_async(args.seconds, args.concurrency))


if __name__ == "__main__":
    main()
