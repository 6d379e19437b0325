"""The overload point: thousands of concurrent clients against one aimass server process.

    .venv/bin/python benchmarks/serving/overload.py [--concurrency 2048 8192] [--duration 10]
        [--max-queue 128] [--max-inflight 0 512] [--max-queue-wait 0] [--server-core 0]
        [--client-core 1]

For each ``--max-inflight`` (a fresh server each), starts ``aimass server --demo`` (one
worker, auth on, connection cap raised to 20,000, the probe port on ``--port`` + 1,
pinned to ``--server-core``), sets the demo ONNX deployment's ``max_queue``, and for
each concurrency opens that many keep-alive connections (pinned to ``--client-core``),
each sending one-row ``/v2/models/breast-cancer-onnx/infer`` requests back to back for
``--duration`` seconds, ignoring Retry-After (the worst crowd). Meanwhile a prober
process (on the load's core, apart from the load's busy event loop) opens a NEW
connection every 100 ms for ``GET /v2/health/live`` and another for ``/ready`` (what
an orchestrator's probes do), on the main port and on the probe port (a thread
each), and reads the server's RSS from
/proc each second. Prints, per concurrency: answers per second, admitted (200),
queue-full (429) and in-flight-cap (503) counts with their p50/p99 latency, other
outcomes, each port's probes' p50/p99/max, and RSS before, at peak and after. Plain
asyncio sockets (on uvloop when installed): no HTTP library between the load and
the server.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import multiprocessing
import os
import re
import resource
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aimass.config import Settings

ROOT = Path(__file__).resolve().parents[2]
MODEL = "breast-cancer-onnx"
#: The probes timed during a point: each path on the main port and on the probe port.
PROBES = ("main live", "main ready", "probe live", "probe ready")


@dataclass
class Tally:
    """Latencies by outcome for one run."""

    ok: list[float] = field(default_factory=list)
    refused: list[float] = field(default_factory=list)
    busy: list[float] = field(default_factory=list)
    other: dict[str, int] = field(default_factory=dict)
    #: Probe latencies and failures by port ("main", "probe").
    probes: dict[str, list[float]] = field(default_factory=dict)
    probe_failures: dict[str, int] = field(default_factory=dict)
    rss_mb: list[float] = field(default_factory=list)


def _pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def listen_overflows() -> int:
    """The kernel's count of connections dropped from full accept queues (all sockets)."""
    lines = Path("/proc/net/netstat").read_text().splitlines()
    for names, values in zip(lines[::2], lines[1::2], strict=False):
        if names.startswith("TcpExt:"):
            found = dict(zip(names.split(), values.split(), strict=False))
            return int(found.get("ListenOverflows", 0))
    return 0


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


async def _read_answer(reader: asyncio.StreamReader) -> tuple[int, bool]:
    """The status of the next answer, and whether the server closes the connection."""
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    length = 0
    closes = False
    for line in head.split(b"\r\n"):
        lower = line.lower()
        if lower[:15] == b"content-length:":
            length = int(line[15:])
        elif lower == b"connection: close":
            closes = True
    if length:
        await reader.readexactly(length)
    return status, closes


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
            status, closes = await _read_answer(reader)
            took = time.perf_counter() - started
            if status == 200:
                tally.ok.append(took)
            elif status == 429:
                tally.refused.append(took)
            elif status == 503 and not closes:
                tally.busy.append(took)
            else:
                tally.other[str(status)] = tally.other.get(str(status), 0) + 1
            if closes:
                break  # refused connection (the connection cap): the server closes it
    except (OSError, asyncio.IncompleteReadError) as exc:
        tally.other[type(exc).__name__] = tally.other.get(type(exc).__name__, 0) + 1
    finally:
        writer.close()


def _probe_and_sample(port: int, pid: int, duration: float, request: bytes, out: Any) -> None:
    """In its own process (the load generator's loop is busy): probe every 100 ms on a new
    connection, the main port and the probe port (``port`` + 1) each from its own thread
    (a slow main port does not thin out the probe port's samples), and read the server's
    RSS every second. A third thread is one more client, outside the crowd's busy loop:
    one inference request every 100 ms on a keep-alive connection, its 200s timed as
    "sampled" (what an admitted request costs, without the load generator's own delay).
    Send (latencies by port and "sampled", failures by the same keys, RSS)."""
    until = time.monotonic() + duration
    latencies: dict[str, list[float]] = {key: [] for key in (*PROBES, "sampled")}
    failures = dict.fromkeys(latencies, 0)

    def prober(which: str, target: int) -> None:
        path = which.split()[1]
        probe = (
            f"GET /v2/health/{path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
        ).encode()
        while time.monotonic() < until:
            started = time.perf_counter()
            try:
                with socket.create_connection(("127.0.0.1", target), timeout=5) as sock:
                    sock.sendall(probe)
                    answer = sock.recv(4096)
                if answer.startswith(b"HTTP/1.1 200"):
                    latencies[which].append(time.perf_counter() - started)
                else:
                    failures[which] += 1
            except OSError:
                failures[which] += 1
            time.sleep(0.1)

    def sampler() -> None:
        sock: socket.socket | None = None
        while time.monotonic() < until:
            started = time.perf_counter()
            try:
                if sock is None:
                    sock = socket.create_connection(("127.0.0.1", port), timeout=30)
                sock.sendall(request)
                answer = b""
                while b"\r\n\r\n" not in answer:
                    chunk = sock.recv(65536)
                    if not chunk:
                        raise OSError("closed")
                    answer += chunk
                head, _, rest = answer.partition(b"\r\n\r\n")
                length = next(
                    int(line[15:])
                    for line in head.split(b"\r\n")
                    if line[:15].lower() == b"content-length:"
                )
                while len(rest) < length:
                    rest += sock.recv(65536)
                if head.startswith(b"HTTP/1.1 200"):
                    latencies["sampled"].append(time.perf_counter() - started)
                else:
                    failures["sampled"] += 1
            except (OSError, StopIteration):
                failures["sampled"] += 1
                if sock is not None:
                    sock.close()
                sock = None
            time.sleep(0.1)
        if sock is not None:
            sock.close()

    threads = [threading.Thread(target=sampler)]
    for which in PROBES:
        target = port if which.startswith("main") else port + 1
        threads.append(threading.Thread(target=prober, args=(which, target)))
    for thread in threads:
        thread.start()
    rss: list[float] = []
    while time.monotonic() < until:
        rss.append(_rss_mb(pid))
        time.sleep(1.0)
    for thread in threads:
        thread.join()
    out.send((latencies, failures, rss))


async def _run(port: int, request: bytes, clients: int, duration: float) -> Tally:
    tally = Tally()
    until = time.monotonic() + duration
    tasks = []
    for start in range(0, clients, 256):  # connect in waves: a SYN storm is not the point
        for _ in range(min(256, clients - start)):
            tasks.append(asyncio.create_task(_client(port, request, until, tally)))
        await asyncio.sleep(0.01)
    await asyncio.gather(*tasks)
    return tally


def _histograms(base: str, token: str) -> dict[str, dict[float, float]]:
    """The server's cumulative bucket counts of the model's request, queue and batch
    histograms (``/metrics``), by name and upper bound."""
    wanted = ("request_seconds", "queue_seconds", "batch_size")
    found: dict[str, dict[float, float]] = {name: {} for name in wanted}
    for line in _get(f"{base}/metrics", token).decode().splitlines():
        for name in wanted:
            if line.startswith(f"aimass_inference_{name}_bucket{{") and MODEL in line:
                bound = line.split('le="', 1)[1].split('"', 1)[0]
                upper = float("inf") if bound == "+Inf" else float(bound)
                found[name][upper] = found[name].get(upper, 0.0) + float(line.rsplit(" ", 1)[1])
    return found


def _quantile(before: dict[float, float], after: dict[float, float], q: float) -> str:
    """The bucket bound under which ``q`` of the point's observations fell ("<= x")."""
    bounds = sorted(after)
    counts = [after[b] - before.get(b, 0.0) for b in bounds]
    if not counts or counts[-1] <= 0:
        return "-"
    for bound, count in zip(bounds, counts, strict=True):
        if count >= q * counts[-1]:
            return f"<= {bound:g}"
    return "-"


def _get(url: str, token: str) -> bytes:
    req = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(req, timeout=10) as answer:
        return answer.read()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--concurrency", type=int, nargs="+", default=[2048, 8192])
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--max-queue", type=int, default=128)
    parser.add_argument("--max-inflight", type=int, nargs="+", default=[0, 512])
    parser.add_argument("--max-queue-wait", type=float, default=0.0)
    parser.add_argument(
        "--max-connections",
        type=int,
        default=Settings.model_fields["max_connections"].default,
        help="AIMASS_MAX_CONNECTIONS (default: the server's own)",
    )
    parser.add_argument("--server-core", default="0")
    parser.add_argument("--client-core", default="1")
    parser.add_argument("--port", type=int, default=18090)
    args = parser.parse_args()
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    print(
        f"aimass overload point: 1 worker on core {args.server_core}, load on core(s) "
        f"{args.client_core}, max_queue {args.max_queue}, max_queue_wait "
        f"{args.max_queue_wait or 'off'}, {args.duration:g} s per point, "
        f"nproc {os.cpu_count()}, load average {os.getloadavg()[0]:.2f}, "
        f"client loop {'uvloop' if _uvloop() else 'asyncio'}"
    )
    for max_inflight in args.max_inflight:
        _point(args, max_inflight)


def _uvloop() -> bool:
    try:
        import uvloop  # noqa: F401
    except ImportError:
        return False
    return True


@dataclass
class DemoServer:
    """A running ``aimass server --demo``: where it answers and what to send it."""

    base: str
    token: str
    pid: int
    home: Path
    #: One-row ``/v2/models/<MODEL>/infer`` JSON body, and the whole HTTP/1.1 request.
    body: bytes
    request: bytes


@contextlib.contextmanager
def demo_server(
    port: int,
    core: str,
    *,
    max_connections: int,
    max_inflight: int,
    max_queue_wait: float,
    max_queue: int,
) -> Iterator[DemoServer]:
    """``aimass server --demo`` on ``port`` (probe port ``port`` + 1), one worker pinned to
    ``core``, its ONNX deployment's ``max_queue`` set; stopped and its home removed after."""
    home = Path(tempfile.mkdtemp(prefix="aimass-overload-"))
    env = {
        **os.environ,
        "AIMASS_HOME": str(home),
        "AIMASS_JOBS": "false",
        "AIMASS_MAX_CONNECTIONS": str(max_connections),
        "AIMASS_MAX_INFLIGHT": str(max_inflight),
        "AIMASS_MAX_QUEUE_WAIT_S": str(max_queue_wait),
        "AIMASS_PROBE_PORT": str(port + 1),
        "OMP_NUM_THREADS": "1",
    }
    command = [str(ROOT / ".venv/bin/aimass"), "server", "--demo", "--port", str(port)]
    if shutil.which("taskset"):
        command = ["taskset", "-c", core, *command]
    log = (home.parent / f"{home.name}.log").open("wb")  # why it failed, if it does
    server = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
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
                    tail = Path(log.name).read_text(errors="replace")[-2000:]
                    raise SystemExit(f"the server did not serve the demo model:\n{tail}") from None
                time.sleep(0.5)
        sys.path.insert(0, str(ROOT / "src"))
        from aimass import Client

        with Client(url=base, token=token) as client:
            client.deployments.update(MODEL, max_queue=max_queue)
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
        yield DemoServer(base, token, server.pid, home, body, request)
    finally:
        server.terminate()
        server.wait(timeout=30)
        log.close()
        Path(log.name).unlink(missing_ok=True)
        shutil.rmtree(home, ignore_errors=True)


def log_sizes(home: Path) -> dict[Path, int]:
    """The server's JSON log files under ``home`` and their sizes: a mark for ``loop_report``."""
    return {path: path.stat().st_size for path in home.rglob("*.jsonl")}


def loop_report(home: Path, mark: dict[Path, int]) -> str:
    """The server's warnings logged since ``mark``: late sweeps (long loop turns) and
    parked connections' waits (admission.py logs at most one of each a second)."""
    text = "".join(
        path.read_bytes()[mark.get(path, 0) :].decode(errors="replace")
        for path in home.rglob("*.jsonl")
    )
    late = [float(x) for x in re.findall(r"sweep ran ([0-9.]+) s late", text)]
    late += [float(x) for x in re.findall(r"this sweep ([0-9.]+) s late", text)]
    waited = [float(x) for x in re.findall(r"(?:has waited|oldest waited) ([0-9.]+) s", text)]
    if not late and not waited:
        return "no sweep over 0.25 s late, no parked wait logged"
    return (
        f"{len(late)} seconds with a sweep over 0.25 s late (max {max(late, default=0):.2f} s);"
        f" oldest parked wait logged max {max(waited, default=0):.2f} s"
    )


def probe_report(probes: dict[str, list[float]], failures: dict[str, int]) -> str:
    """Each probe's answered count, failures and p50/p99/max (ms)."""
    lines = []
    for which in PROBES:
        values = probes.get(which, [])
        lines.append(
            f"{which}: {len(values)} ok, {failures.get(which, 0)} failed, "
            f"p50 {_pct(values, 0.5) * 1000:.1f} p99 {_pct(values, 0.99) * 1000:.1f} "
            f"max {max(values, default=float('nan')) * 1000:.1f} ms"
        )
    return "; ".join(lines)


def start_prober(port: int, pid: int, duration: float, request: bytes) -> Callable[[], Any]:
    """Start ``_probe_and_sample`` in its own process; a function that waits for its result."""
    receive, send = multiprocessing.Pipe(duplex=False)
    prober = multiprocessing.Process(
        target=_probe_and_sample, args=(port, pid, duration, request, send)
    )
    prober.start()

    def result() -> Any:
        answer = receive.recv()
        prober.join()
        return answer

    return result


def _point(args: argparse.Namespace, max_inflight: int) -> None:
    """Start a server with ``max_inflight`` and run every concurrency against it."""
    with demo_server(
        args.port,
        args.server_core,
        max_connections=args.max_connections,
        max_inflight=max_inflight,
        max_queue_wait=args.max_queue_wait,
        max_queue=args.max_queue,
    ) as demo:
        base, token, request = demo.base, demo.token, demo.request
        server_pid = demo.pid
        affinity = os.sched_getaffinity(0)
        if shutil.which("taskset"):
            os.sched_setaffinity(0, {int(c) for c in args.client_core.split(",")})
        print(f"max_inflight {max_inflight or 'off'} (load average {os.getloadavg()[0]:.2f}):")
        for clients in args.concurrency:
            rss_before = _rss_mb(server_pid)
            histograms = _histograms(base, token)
            probed = start_prober(args.port, server_pid, args.duration, request)
            run = _run(args.port, request, clients, args.duration)
            if _uvloop():
                import uvloop

                tally = uvloop.run(run)
            else:
                tally = asyncio.run(run)
            tally.probes, tally.probe_failures, tally.rss_mb = probed()
            time.sleep(2.0)
            _report(clients, args.duration, tally, rss_before, _rss_mb(server_pid))
            after = _histograms(base, token)
            print(
                "    server side, admitted: request p50 "
                f"{_quantile(histograms['request_seconds'], after['request_seconds'], 0.5)} s "
                f"p99 {_quantile(histograms['request_seconds'], after['request_seconds'], 0.99)}"
                f" s; queue wait p99 "
                f"{_quantile(histograms['queue_seconds'], after['queue_seconds'], 0.99)} s; "
                f"batch size p50 "
                f"{_quantile(histograms['batch_size'], after['batch_size'], 0.5)}",
                flush=True,
            )
        os.sched_setaffinity(0, affinity)


def _report(clients: int, duration: float, tally: Tally, before: float, after: float) -> None:
    ms = 1000.0

    def latency(values: list[float]) -> str:
        p50, p99 = _pct(values, 0.5) * ms, _pct(values, 0.99) * ms
        return f"{len(values)} p50 {p50:.1f} ms p99 {p99:.1f} ms"

    sampled = tally.probes.get("sampled", [])
    answered = len(tally.ok) + len(tally.refused) + len(tally.busy)
    print(
        f"  c={clients}: {answered / duration:,.0f} answers/s | 200: {latency(tally.ok)} | "
        f"429: {latency(tally.refused)} | 503: {latency(tally.busy)} | "
        f"other: {tally.other or 0} | sampled client (one request per 100 ms, off the "
        f"crowd's loop): 200 {latency(sampled)}, {tally.probe_failures.get('sampled', 0)} "
        f"refused or failed | probes (new connection each): "
        f"{probe_report(tally.probes, tally.probe_failures)} | "
        f"RSS {before:.0f} MB before, {max(tally.rss_mb, default=0):.0f} peak, {after:.0f} after",
        flush=True,
    )


if __name__ == "__main__":
    socket.setdefaulttimeout(30)
    main()
