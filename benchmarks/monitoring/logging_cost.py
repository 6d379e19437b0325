"""What prediction logging costs the inference path, and what node metrics cost a core.

    .venv/bin/python benchmarks/monitoring/logging_cost.py [--seconds 20] [--concurrency 64]

Starts ``aimass server`` twice on a fresh home (a tiny ONNX logistic regression, in-process,
auth off): once with prediction logging off, once at 100 % sampling. Each run
drives ``--concurrency`` keep-alive clients against the JSON predict route for
``--seconds`` and prints requests per second; after the logging run the server is
stopped (SIGTERM: the writer drains its queue) and the rows in the Parquet log
are counted against the requests answered. Then it times ``NodeCollector``'s
scrape and prints its CPU cost as a share of one core at a 5 s interval.
The load generator runs on the same machine: compare the two figures with each
other, not with other machines.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np


def _port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _start(home: Path, port: int, sample: float) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "AIMASS_HOME": str(home),
        "AIMASS_PORT": str(port),
        "AIMASS_AUTH": "false",
        "AIMASS_JOBS": "false",
        "AIMASS_PREDICTION_LOG_SAMPLE": str(sample),
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "aimass.cli", "server"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/v2/health/ready").status_code == 200:
                return process
        except httpx.HTTPError:
            time.sleep(0.2)
    process.kill()
    raise SystemExit("the server did not start")


def _deploy(url: str) -> None:
    from sklearn.linear_model import LogisticRegression

    import aimass

    rng = np.random.default_rng(0)
    x = rng.normal(size=(500, 4)).astype(np.float32)
    y = (x[:, 0] > 0).astype(int)
    # ONNX, served in-process: an sklearn model would be a pickle-family file that runs in
    # the sandboxed model host, whose process hop (not logging) would set the pace.
    from skl2onnx import to_onnx

    onnx_model = to_onnx(
        LogisticRegression().fit(x, y), x[:1], options={"zipmap": False}, target_opset=17
    )
    with aimass.Client(url=url) as client:
        if not client.deployments.list():
            client.models.log("tiny", onnx_model)
            client.deployments.create("tiny", version=1)
        client.deployments.wait_ready("tiny", timeout=60)


async def _load(url: str, seconds: float, concurrency: int) -> int:
    """Requests answered 200 by ``concurrency`` keep-alive clients in ``seconds``.

    aiohttp (installed with Ray), not httpx: httpx's async pool itself slows down as
    connections are added (about 90 req/s at c=64 on this machine against ~600 at
    c=8, old and new servers alike), which would measure the client, not the server.
    """
    import aiohttp

    body = b'{"inputs": [[0.1, -0.2, 0.3, 0.4]]}'
    headers = {"content-type": "application/json"}
    stop = time.monotonic() + seconds
    done = 0

    async def worker(session: aiohttp.ClientSession) -> None:
        nonlocal done
        while time.monotonic() < stop:
            async with session.post(
                f"{url}/api/v1/deployments/tiny/predict", data=body, headers=headers
            ) as reply:
                await reply.read()
                if reply.status == 200:
                    done += 1

    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:
        await asyncio.gather(*(worker(session) for _ in range(concurrency)))
    return done


def _logged_rows(artifacts: Path) -> int:
    import pyarrow.parquet as pq

    return sum(
        pq.read_metadata(io.BytesIO(path.read_bytes())).num_rows
        for path in (artifacts / "predictions").rglob("*")
        if path.is_file()
    )


def _run(home: Path, sample: float, seconds: float, concurrency: int) -> tuple[float, int]:
    port = _port()
    url = f"http://127.0.0.1:{port}"
    process = _start(home, port, sample)
    try:
        _deploy(url)
        warm = asyncio.run(_load(url, 2.0, concurrency))
        started = time.perf_counter()
        answered = asyncio.run(_load(url, seconds, concurrency))
        rate = answered / (time.perf_counter() - started)
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=60)
    if not sample:
        return rate, 0
    return rate, _logged_rows(home / "artifacts") - (warm + answered)


def _node_cost(scrapes: int = 50) -> float:
    from prometheus_client import CollectorRegistry, generate_latest

    from aimass.monitoring.node import NodeCollector

    registry = CollectorRegistry()
    registry.register(NodeCollector())
    generate_latest(registry)
    started = time.process_time()
    for _ in range(scrapes):
        generate_latest(registry)
    per_scrape = (time.process_time() - started) / scrapes
    return per_scrape / 5.0  # share of one core at one scrape every 5 s


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--concurrency", type=int, default=64)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        off, _ = _run(Path(folder) / "off", 0.0, args.seconds, args.concurrency)
        on, missing = _run(Path(folder) / "on", 1.0, args.seconds, args.concurrency)
    print(f"prediction logging off:  {off:8.0f} req/s (c={args.concurrency})")
    print(f"prediction logging 100%: {on:8.0f} req/s ({(on / off - 1) * 100:+.1f} %)")
    print(f"logged rows minus requests answered 200: {missing}")
    print(f"node metrics: {_node_cost() * 100:.3f} % of one core at a 5 s interval")


if __name__ == "__main__":
    main()
