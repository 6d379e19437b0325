"""What prediction logging costs the inference path, whether it loses records, and node metrics.

    .venv/bin/python benchmarks/monitoring/logging_cost.py [--seconds 20 --runs 3 --concurrency 64]
    .venv/bin/python benchmarks/monitoring/logging_cost.py --seconds 10 --runs 5 --two-servers
    .venv/bin/python benchmarks/monitoring/logging_cost.py --rate 2000 --duration 600   # the soak

Cost: starts one ``aimass server`` (a fresh home, a tiny ONNX logistic regression
served in-process, auth off) serving the model twice: deployment ``tiny`` with
prediction logging off and ``tiny-on`` at 100 % sampling (per-deployment rates),
so both settings share one process, its memory and its scheduling; with
``--two-servers``, one server per setting instead (the method before session 7,
whose pairs scattered from -22 % to +8 % on a quiet machine). It drives
them in turn, ``--runs`` windows each, interleaved (off, on, off, on, ...), with
``--concurrency`` keep-alive clients against the JSON predict route for
``--seconds`` each; after each window it waits a flush interval and more (and
after an "on" window until the log's queue is empty), so the writer's work lands
in its window, and both count the same idle time.
It prints each window's requests per second and the server's CPU time per
request (all its threads, the writer's too: less sensitive to a busy machine than
the rate), and the medians' ratios. Then the servers are stopped (SIGTERM: the
writer drains its queue) and the rows in the Parquet log are counted against the
requests answered. Last, it times ``NodeCollector``'s scrape and prints its CPU
cost as a share of one core at a 5 s interval.

Soak (``--rate``): one server at 100 % sampling driven at a fixed rate (open loop,
at most ``--concurrency`` requests in flight) for ``--duration``
seconds; it prints the rate answered each minute, then stops the server and
compares the requests answered with the rows logged and the records dropped (the
server's ``aimass_prediction_log_dropped_total``).

The load generator runs on the same machine: compare figures of one run with each
other, not with other machines, and say the load (``uptime``) beside them.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import httpx
import numpy as np

#: The servers' prediction-log flush interval (AIMASS_PREDICTION_LOG_FLUSH_S, its default).
FLUSH_S = 1.0


def _port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _start(
    home: Path,
    port: int,
    sample: float,
    rates: dict[str, float] | None = None,
    core: str | None = None,
) -> subprocess.Popen[bytes]:
    """The server, answering ready; on ``core`` alone with one math thread when given
    (taskset execs, so the process's pid is the server's)."""
    env = {
        **os.environ,
        "AIMASS_HOME": str(home),
        "AIMASS_PORT": str(port),
        "AIMASS_AUTH": "false",
        "AIMASS_JOBS": "false",
        "AIMASS_PREDICTION_LOG_SAMPLE": str(sample),
        "AIMASS_PREDICTION_LOG_RATES": json.dumps(rates or {}),
    }
    pinned = ["taskset", "-c", core] if core is not None else []
    if core is not None:
        env["OMP_NUM_THREADS"] = "1"
    process = subprocess.Popen(
        [*pinned, sys.executable, "-m", "aimass.cli", "server"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 300  # a shared machine can be slow to start it
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/v2/health/ready").status_code == 200:
                return process
        except httpx.HTTPError:
            time.sleep(0.2)
    process.kill()
    raise SystemExit("the server did not start")


def _deploy(url: str, also: tuple[str, ...] = ()) -> None:
    """Serve the tiny model as deployment ``tiny``, and as each name in ``also``."""
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
            for name in also:
                client.deployments.create("tiny", name=name, version=1)
        for name in ("tiny", *also):
            client.deployments.wait_ready(name, timeout=300)


async def _load(url: str, seconds: float, concurrency: int, deployment: str = "tiny") -> int:
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
                f"{url}/api/v1/deployments/{deployment}/predict", data=body, headers=headers
            ) as reply:
                await reply.read()
                if reply.status == 200:
                    done += 1

    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:
        await asyncio.gather(*(worker(session) for _ in range(concurrency)))
    return done


def _logged_rows(artifacts: Path) -> int:
    return _logged(artifacts)[0]


def _logged(artifacts: Path) -> tuple[int, int]:
    """Rows in the Parquet log, and its files (few, large ones: the writer batches)."""
    import pyarrow.parquet as pq

    paths = [path for path in (artifacts / "predictions").rglob("*") if path.is_file()]
    rows = sum(pq.read_metadata(io.BytesIO(path.read_bytes())).num_rows for path in paths)
    return rows, len(paths)


def _metric(url: str, name: str) -> float:
    """One sample of the server's Prometheus metrics (0 when it is not there)."""
    for line in httpx.get(f"{url}/metrics").text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    return 0.0


def _drained(url: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while _metric(url, "aimass_prediction_log_queue_depth") and time.monotonic() < deadline:
        time.sleep(0.2)


def _cpu(process: subprocess.Popen[bytes]) -> float:
    """CPU seconds the server has used, all its threads (the writer's too)."""
    import psutil

    times = psutil.Process(process.pid).cpu_times()
    return float(times.user + times.system)


def _stop(process: subprocess.Popen[bytes]) -> None:
    process.send_signal(signal.SIGTERM)
    process.wait(timeout=120)


def _targets(home: Path, one_server: bool) -> dict[float, tuple[str, subprocess.Popen[bytes], str]]:
    """Logging off and at 100 %: (url, server, deployment) of each.

    One server: deployment ``tiny`` unlogged and ``tiny-on`` (the same model) at
    100 % through the per-deployment rates, so both settings share the process,
    its memory and its core. Two servers: one per setting, each serving ``tiny``.
    """
    if one_server:
        port = _port()
        url = f"http://127.0.0.1:{port}"
        process = _start(home / "1.0", port, 0.0, {"tiny-on": 1.0})
        _deploy(url, also=("tiny-on",))
        return {0.0: (url, process, "tiny"), 1.0: (url, process, "tiny-on")}
    targets = {}
    for sample in (0.0, 1.0):
        port = _port()
        url = f"http://127.0.0.1:{port}"
        targets[sample] = (url, _start(home / str(sample), port, sample), "tiny")
        _deploy(url)
    return targets


def _cost(home: Path, seconds: float, runs: int, concurrency: int, one_server: bool) -> None:
    rates: dict[float, list[float]] = {0.0: [], 1.0: []}
    costs: dict[float, list[float]] = {0.0: [], 1.0: []}
    answered = 0
    targets: dict[float, tuple[str, subprocess.Popen[bytes], str]] = {}
    try:
        targets = _targets(home, one_server)
        on_url = targets[1.0][0]
        for sample in (0.0, 1.0):  # warm both: imports, first batches, the first Parquet file
            url, _, deployment = targets[sample]
            done = asyncio.run(_load(url, 5.0, concurrency, deployment))
            answered += done if sample else 0
        _drained(on_url)
        for run in range(runs):
            for sample in (0.0, 1.0):
                url, process, deployment = targets[sample]
                cpu = _cpu(process)
                started = time.perf_counter()
                done = asyncio.run(_load(url, seconds, concurrency, deployment))
                rates[sample].append(done / (time.perf_counter() - started))
                time.sleep(FLUSH_S + 0.5)  # both: the same idle time in each CPU window
                if sample:
                    answered += done
                    _drained(url)
                costs[sample].append((_cpu(process) - cpu) / done * 1e6)
                label = "100%" if sample else "off "
                print(f"run {run + 1} logging {label}: {rates[sample][-1]:8.0f} req/s, "
                      f"server CPU {costs[sample][-1]:6.1f} us a request "
                      f"(load {os.getloadavg()[0]:.1f})", flush=True)  # fmt: skip
        dropped = _metric(on_url, "aimass_prediction_log_dropped_total")
    finally:
        for process in {id(p): p for _, p, _ in targets.values()}.values():
            _stop(process)
    off, on = statistics.median(rates[0.0]), statistics.median(rates[1.0])
    logged, files = _logged(home / "1.0" / "artifacts")
    print(f"prediction logging off:  {off:8.0f} req/s, median of {runs} (c={concurrency})")
    change = (on / off - 1) * 100
    print(f"prediction logging 100%: {on:8.0f} req/s, median of {runs} ({change:+.1f} %)")
    cpu_off, cpu_on = statistics.median(costs[0.0]), statistics.median(costs[1.0])
    print(f"server CPU a request: {cpu_off:.1f} us off, {cpu_on:.1f} us at 100% "
          f"({(cpu_on / cpu_off - 1) * 100:+.1f} %), medians")  # fmt: skip
    # Each "on" window against the "off" window just before it: a load that drifts
    # over the run moves both of a pair, not one setting's median.
    pairs = [(on / off - 1) * 100 for off, on in zip(rates[0.0], rates[1.0], strict=True)]
    cpu_pairs = [(on / off - 1) * 100 for off, on in zip(costs[0.0], costs[1.0], strict=True)]
    print(f"pairs (100% against the off window before it): req/s median "
          f"{statistics.median(pairs):+.1f} % ({', '.join(f'{p:+.0f}' for p in pairs)}), "
          f"CPU a request median {statistics.median(cpu_pairs):+.1f} %")  # fmt: skip
    print(f"requests answered 200: {answered}, rows logged: {logged}, dropped: {dropped:.0f}")
    print(f"Parquet files: {files}, {logged / max(files, 1):.0f} rows a file")


async def _drive(
    url: str, rate: float, seconds: float, concurrency: int
) -> tuple[int, Counter[str], int]:
    """Requests sent at ``rate`` a second for ``seconds``: (answered 200, the others, late).

    Open loop: request i leaves at start + i / rate unless ``concurrency`` are in
    flight; one that leaves over 50 ms after its time is counted late, so a server
    (or client) that cannot keep up shows as late requests and a lower rate. It
    stops sending after ``seconds``, however many left.
    """
    import aiohttp

    body = b'{"inputs": [[0.1, -0.2, 0.3, 0.4]]}'
    headers = {"content-type": "application/json"}
    answered = late = 0
    failed: Counter[str] = Counter()
    slots = asyncio.Semaphore(concurrency)

    async def one(session: aiohttp.ClientSession) -> None:
        nonlocal answered
        try:
            async with session.post(
                f"{url}/api/v1/deployments/tiny/predict", data=body, headers=headers
            ) as reply:
                await reply.read()
                if reply.status == 200:
                    answered += 1
                else:
                    failed[str(reply.status)] += 1
        except aiohttp.ClientError as exc:
            failed[type(exc).__name__] += 1
        finally:
            slots.release()

    tasks: set[asyncio.Task[None]] = set()
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:
        start = time.monotonic()
        minute, last = start + 60, 0
        i = 0
        while time.monotonic() - start < seconds:
            wait = start + i / rate - time.monotonic()
            i += 1
            if wait > 0:
                await asyncio.sleep(wait)
            elif wait < -0.05:
                late += 1
            await slots.acquire()
            task = asyncio.create_task(one(session))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
            if time.monotonic() >= minute:
                print(f"  {minute - start:4.0f} s: {(answered - last) / 60:6.0f} req/s answered")
                minute, last = minute + 60, answered
        await asyncio.gather(*tasks)
    return answered, failed, late


def _soak(home: Path, rate: float, seconds: float, concurrency: int) -> None:
    port = _port()
    url = f"http://127.0.0.1:{port}"
    process = _start(home, port, 1.0)
    try:
        _deploy(url)
        warm = asyncio.run(
            _load(url, 5.0, 8)
        )  # warm: imports, first batches, the first Parquet file
        _drained(url)
        started = time.perf_counter()
        answered, failed, late = asyncio.run(_drive(url, rate, seconds, concurrency))
        took = time.perf_counter() - started
        dropped = _metric(url, "aimass_prediction_log_dropped_total")
    finally:
        _stop(process)
    logged = _logged_rows(home / "artifacts") - warm
    sent = answered + sum(failed.values())
    print(f"soak: {sent} requests in {took:.0f} s = {sent / took:.0f} req/s (asked {rate:.0f}); "
          f"{late} left over 50 ms late")  # fmt: skip
    print(f"answered 200: {answered}, other outcomes: {dict(failed) or 'none'}")
    print(f"rows logged: {logged}, dropped: {dropped:.0f}")
    print(f"answered - logged - dropped: {answered - logged - dropped:.0f}")


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
    parser.add_argument("--seconds", type=float, default=20.0, help="each cost window")
    parser.add_argument("--runs", type=int, default=3, help="cost windows per setting")
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument(
        "--two-servers",
        action="store_true",
        help="cost: one server per setting (before session 7), not two deployments of one",
    )
    parser.add_argument("--rate", type=float, help="soak: requests a second (open loop)")
    parser.add_argument("--duration", type=float, default=600.0, help="soak: seconds")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        if args.rate:
            _soak(Path(folder), args.rate, args.duration, args.concurrency)
            return
        _cost(Path(folder), args.seconds, args.runs, args.concurrency, not args.two_servers)
    print(f"node metrics: {_node_cost() * 100:.3f} % of one core at a 5 s interval")


if __name__ == "__main__":
    main()
