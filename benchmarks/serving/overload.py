"""The overload point: thousands of concurrent clients against one aimass server process.

    .venv/bin/python benchmarks/serving/overload.py [--concurrency 2048 8192] [--duration 10]
        [--max-queue 128] [--server-core 0] [--client-core 1]

Starts ``aimass server --demo`` (one worker, auth on, connection cap raised to 20,000,
pinned to ``--server-core``), sets the demo ONNX deployment's ``max_queue``, and for
each concurrency opens that many keep-alive connections (pinned to ``--client-core``),
each sending one-row ``/v2/models/breast-cancer-onnx/infer`` requests back to back for
``--duration`` seconds. Meanwhile a prober process (on the load's core, apart from
the load's busy event loop) opens a NEW connection every 100 ms for
``GET /v2/health/live`` (what a liveness probe does), and reads the server's RSS
from /proc each second. Prints, per concurrency: answers per second, admitted (200)
and refused (429) counts with their p50/p99 latency, other outcomes, the probes'
p50/p99/max, and RSS before, at peak and after. Plain asyncio sockets: no HTTP
library between the load and the server.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import resource
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
MODEL = "breast-cancer-onnx"


@dataclass
class Tally:
    """Latencies by outcome for one run."""

    ok: list[float] = field(default_factory=list)
    refused: list[float] = field(default_factory=list)
    other: dict[str, int] = field(default_factory=dict)
    probes: list[float] = field(default_factory=list)
    probe_failures: int = 0
    rss_mb: list[float] = field(default_factory=list)


def _pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


async def _read_answer(reader: asyncio.StreamReader) -> int:
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    length = 0
    for line in head.split(b"\r\n"):
        if line[:15].lower() == b"content-length:":
            length = int(line[15:])
    if length:
        await reader.readexactly(length)
    return status


async def _client(port: int, request: bytes, until: float, tally: Tally) -> None:
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
    except OSError as exc:
        tally.other[f"connect {type(exc).__name__}"] = (
            tally.other.get(f"connect {type(exc).__name__}", 0) + 1
        )
        return
    try:
        while time.monotonic() < until:
            started = time.perf_counter()
            writer.write(request)
            status = await _read_answer(reader)
            took = time.perf_counter() - started
            if status == 200:
                tally.ok.append(took)
            elif status == 429:
                tally.refused.append(took)
            else:
                tally.other[str(status)] = tally.other.get(str(status), 0) + 1
                if status == 503:
                    break  # refused connection: the server closes it
    except (OSError, asyncio.IncompleteReadError) as exc:
        tally.other[type(exc).__name__] = tally.other.get(type(exc).__name__, 0) + 1
    finally:
        writer.close()


def _probe_and_sample(port: int, pid: int, duration: float, out: Any) -> None:
    """In its own process (the load generator's loop is busy): probe every 100 ms on a new
    connection, read the server's RSS every second; send (probe latencies, failures, RSS)."""
    probe = b"GET /v2/health/live HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    until = time.monotonic() + duration
    latencies: list[float] = []
    failures = 0
    rss: list[float] = []
    next_rss = 0.0
    while time.monotonic() < until:
        if time.monotonic() >= next_rss:
            rss.append(_rss_mb(pid))
            next_rss = time.monotonic() + 1.0
        started = time.perf_counter()
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
                sock.sendall(probe)
                answer = sock.recv(4096)
            if answer.startswith(b"HTTP/1.1 200"):
                latencies.append(time.perf_counter() - started)
            else:
                failures += 1
        except OSError:
            failures += 1
        time.sleep(0.1)
    out.send((latencies, failures, rss))


async def _run(port: int, request: bytes, clients: int, duration: float, pid: int) -> Tally:
    tally = Tally()
    until = time.monotonic() + duration
    tasks = []
    for start in range(0, clients, 256):  # connect in waves: a SYN storm is not the point
        for _ in range(min(256, clients - start)):
            tasks.append(asyncio.create_task(_client(port, request, until, tally)))
        await asyncio.sleep(0.01)
    await asyncio.gather(*tasks)
    return tally


def _get(url: str, token: str) -> bytes:
    req = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(req, timeout=10) as answer:
        return answer.read()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--concurrency", type=int, nargs="+", default=[2048, 8192])
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--max-queue", type=int, default=128)
    parser.add_argument("--server-core", default="0")
    parser.add_argument("--client-core", default="1")
    parser.add_argument("--port", type=int, default=18090)
    args = parser.parse_args()
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    home = Path(tempfile.mkdtemp(prefix="aimass-overload-"))
    env = {
        **os.environ,
        "AIMASS_HOME": str(home),
        "AIMASS_JOBS": "false",
        "AIMASS_MAX_CONNECTIONS": "20000",
        "OMP_NUM_THREADS": "1",
    }
    command = [str(ROOT / ".venv/bin/aimass"), "server", "--demo", "--port", str(args.port)]
    if shutil.which("taskset"):
        command = ["taskset", "-c", args.server_core, *command]
    server = subprocess.Popen(
        command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    base = f"http://127.0.0.1:{args.port}"
    try:
        token = ""
        deadline = time.monotonic() + 180
        while True:
            try:
                token = (home / "token").read_text().strip()
                _get(f"{base}/v2/models/{MODEL}/ready", token)
                break
            except Exception:
                if time.monotonic() > deadline or server.poll() is not None:
                    raise SystemExit("the server did not serve the demo model") from None
                time.sleep(0.5)
        sys.path.insert(0, str(ROOT / "src"))
        from aimass import Client

        with Client(url=base, token=token) as client:
            client.deployments.update(MODEL, max_queue=args.max_queue)
            client.deployments.wait_ready(MODEL, timeout=60)
        name = json.loads(_get(f"{base}/v2/models/{MODEL}", token))["inputs"][0]["name"]
        from sklearn.datasets import load_breast_cancer

        row = load_breast_cancer().data[:1].astype("float32")[0].tolist()
        body = json.dumps(
            {"inputs": [{"name": name, "shape": [1, 30], "datatype": "FP32", "data": row}]}
        ).encode()
        request = (
            f"POST /v2/models/{MODEL}/infer HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            f"Authorization: Bearer {token}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        ).encode() + body
        if shutil.which("taskset"):
            os.sched_setaffinity(0, {int(c) for c in args.client_core.split(",")})
        print(
            f"aimass overload point: 1 worker on core {args.server_core}, load on core(s) "
            f"{args.client_core}, max_queue {args.max_queue}, {args.duration:g} s per point, "
            f"nproc {os.cpu_count()}, load average {os.getloadavg()[0]:.2f}"
        )
        for clients in args.concurrency:
            rss_before = _rss_mb(server.pid)
            receive, send = multiprocessing.Pipe(duplex=False)
            prober = multiprocessing.Process(
                target=_probe_and_sample, args=(args.port, server.pid, args.duration, send)
            )
            prober.start()
            tally = asyncio.run(_run(args.port, request, clients, args.duration, server.pid))
            tally.probes, tally.probe_failures, tally.rss_mb = receive.recv()
            prober.join()
            time.sleep(2.0)
            rss_after = _rss_mb(server.pid)
            answered = len(tally.ok) + len(tally.refused)
            ms = 1000.0
            print(
                f"c={clients}: {answered / args.duration:,.0f} answers/s | "
                f"200: {len(tally.ok)} p50 {_pct(tally.ok, 0.5) * ms:.1f} ms "
                f"p99 {_pct(tally.ok, 0.99) * ms:.1f} ms | "
                f"429: {len(tally.refused)} p50 {_pct(tally.refused, 0.5) * ms:.1f} ms "
                f"p99 {_pct(tally.refused, 0.99) * ms:.1f} ms | other: {tally.other or 0} | "
                f"live probe (new connection): {len(tally.probes)} ok, "
                f"{tally.probe_failures} failed, p50 {_pct(tally.probes, 0.5) * ms:.1f} ms "
                f"p99 {_pct(tally.probes, 0.99) * ms:.1f} ms "
                f"max {max(tally.probes, default=float('nan')) * ms:.1f} ms | "
                f"RSS {rss_before:.0f} MB before, {max(tally.rss_mb, default=0):.0f} peak, "
                f"{rss_after:.0f} after"
            )
    finally:
        server.terminate()
        server.wait(timeout=30)
        shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    socket.setdefaulttimeout(30)
    main()
