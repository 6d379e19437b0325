"""aimass's own CPU per tiny /v2 infer request, with no HTTP server: the app, called directly.

    .venv/bin/python benchmarks/serving/inproc_cpu.py [-c 1] [--requests 3200] [--rounds 5]
    PYTHONPATH=/tmp/old/src .venv/bin/python benchmarks/serving/inproc_cpu.py -c 1   # a ref

Builds the app of ``aimass server --demo`` (a fresh home, seeded; or ``--home``), runs its
lifespan, then ``-c`` tasks on uvloop each send one-row ``breast-cancer-onnx`` infer requests
through the whole ASGI app (edge guard, auth, batcher, runner, metrics) back to back. Prints
the process's CPU time per request for each round (the runner's thread included), the best
and the median, and how the runner ran them (batches, calls inline). What uvicorn costs is
not in it: compare with ``http_ceiling.py`` for that.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

MODEL = "breast-cancer-onnx"


async def measure(args: argparse.Namespace) -> None:
    from protocol_cpu import start_lifespan  # (this folder)
    from sklearn.datasets import load_breast_cancer

    from aimass.api.app import create_app
    from aimass.api.server import prepare
    from aimass.config import Settings
    from aimass.demo import seed_demo
    from aimass.platform import Platform

    settings = Settings()
    prepare(settings)
    for _ in seed_demo(settings):
        pass
    token = settings.token_file.read_text().strip()
    app = create_app(Platform.from_settings(settings))
    stop, life = await start_lifespan(app)
    row = load_breast_cancer().data[:1].astype("float32")[0].tolist()
    tensor = {"name": "X", "shape": [1, 30], "datatype": "FP32", "data": row}
    body = json.dumps({"inputs": [tensor]}).encode()
    path = f"/v2/models/{MODEL}/infer"
    headers = [
        (b"host", b"127.0.0.1:8080"),
        (b"authorization", f"Bearer {token}".encode()),
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
    ]
    statuses: dict[int, int] = {}

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            statuses[message["status"]] = statuses.get(message["status"], 0) + 1

    async def one() -> None:
        scope = {
            "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
            "method": "POST", "scheme": "http", "path": path, "raw_path": path.encode(),
            "query_string": b"", "headers": headers, "client": ("127.0.0.1", 1),
            "server": ("127.0.0.1", 8080),
        }  # fmt: skip
        await app(scope, receive, send)

    for _ in range(240):  # until the model is loaded
        statuses.clear()
        await one()
        if statuses.get(200):
            break
        await asyncio.sleep(0.5)

    async def caller(count: int) -> None:
        for _ in range(count):
            await one()

    async def rounds(total: int) -> float:
        each = max(1, total // args.connections)
        cpu = time.process_time()
        await asyncio.gather(*(caller(each) for _ in range(args.connections)))
        return (time.process_time() - cpu) / (each * args.connections) * 1e6

    await rounds(min(args.requests, 3200))  # warm-up
    statuses.clear()
    figures = [await rounds(args.requests) for _ in range(args.rounds)]
    load = " ".join(Path("/proc/loadavg").read_text().split()[:3])
    print(f"c={args.connections}: us CPU per request, each round: "
          + ", ".join(f"{f:.1f}" for f in figures))  # fmt: skip
    print(
        f"best {min(figures):.1f}, median {statistics.median(figures):.1f}; "
        f"answers {statuses}; load {load}"
    )
    deployment = app.inference.repository.get(MODEL, "default")
    for version in deployment.versions if deployment else []:
        stats = getattr(version.runner, "stats", None)
        if stats is not None:
            print(
                f"runner: {stats.requests} requests in {stats.batches} batches, "
                f"{getattr(stats, 'inline', 0)} calls inline"
            )
    stop.set()
    await life


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("-c", "--connections", type=int, default=1)
    parser.add_argument("--requests", type=int, default=3200, help="per round")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--home", type=Path, help="an aimass home (default: a fresh one)")
    args = parser.parse_args()
    os.environ.setdefault("AIMASS_JOBS", "false")
    for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ.setdefault(name, "1")
    import uvloop

    if args.home is not None:
        os.environ["AIMASS_HOME"] = str(args.home)
        uvloop.run(measure(args))
        return
    with tempfile.TemporaryDirectory(prefix="inproc-cpu.") as home:
        os.environ["AIMASS_HOME"] = home
        uvloop.run(measure(args))


if __name__ == "__main__":
    main()
