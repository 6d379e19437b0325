"""Ray on this machine, for comparison: ``ray.remote`` no-op tasks and the Ray Jobs API.

    .venv/bin/python benchmarks/jobs/ray_bench.py [--json out.json] [--quick]

Starts its own head node (``ray start --head --block --num-cpus 2
--include-dashboard true`` on free ports, its own ``--temp-dir``, in its own
session) and stops it by signalling that process group at the end, so a Ray
instance someone else runs on the machine is left alone (``ray stop`` would
stop every Ray process of the user). Everything is warmed up before it is timed.

1. Tasks, warm (a driver connected, workers started, the function exported by a
   first call): one ``ray.get(noop.remote())`` at a time, latency p50/p99; and 500
   ``noop.remote()`` submitted at once, ``ray.get`` of all: tasks/s.
2. Ray Jobs (the dashboard's job server), entrypoint ``python -c pass``: one job
   at a time, submit → RUNNING and submit → SUCCEEDED as seen by polling
   ``get_job_status`` every ``--poll-ms``; then 20 submitted at once (20 threads)
   until all SUCCEEDED.

Prints one JSON object (and writes it to ``--json``).
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import contextlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from common import VENV_BIN, free_port, loadavg, stats_ms


def free_port_everywhere() -> int:
    """A port free on every interface: Ray's servers bind them all (a Redis may hold 6379)."""
    try:
        sock = socket.socket(socket.AF_INET6)  # dual stack: free on IPv4 and IPv6 alike
    except OSError:
        sock = socket.socket(socket.AF_INET)
    with sock:
        sock.bind(("", 0))
        return int(sock.getsockname()[1])


def start_head(temp_dir: Path) -> tuple[subprocess.Popen[bytes], int, int]:
    # Every port Ray would take at a fixed default (GCS 6379, client 10001, agent 52365,
    # metrics) is picked free here, so a busy default cannot stop the head.
    port, dashboard = free_port_everywhere(), free_port()
    fixed = {
        flag: str(free_port_everywhere())
        for flag in (
            "--ray-client-server-port",
            "--dashboard-agent-listen-port",
            "--dashboard-agent-grpc-port",
            "--runtime-env-agent-port",
            "--metrics-export-port",
        )
    }
    env = {**os.environ, "PATH": f"{VENV_BIN}:{os.environ.get('PATH', '')}"}
    env["RAY_USAGE_STATS_ENABLED"] = "0"
    # Without it Ray turns the node address 127.0.0.1 into the machine's own address, and the
    # head's agents then wait on an address the dashboard does not serve.
    env["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
    # RAY_AUTH_MODE / RAY_AUTH_TOKEN come from main(): token auth, as Ray 2.59+ does for
    # local clusters by default, with a token of our own (not the user's ~/.ray/auth_token).
    log = (temp_dir / "ray-start.log").open("wb")
    proc = subprocess.Popen(
        [
            str(VENV_BIN / "ray"),
            "start",
            "--head",
            "--block",
            "--num-cpus",
            "2",
            "--include-dashboard",
            "true",
            "--dashboard-host",
            "127.0.0.1",
            "--dashboard-port",
            str(dashboard),
            "--port",
            str(port),
            "--node-ip-address",
            "127.0.0.1",
            "--temp-dir",
            str(temp_dir / "ray"),
            "--disable-usage-stats",
            *(part for item in fixed.items() for part in item),
        ],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    return proc, port, dashboard


def stop_head(proc: subprocess.Popen[bytes]) -> None:
    # ``ray start --block`` stops the processes it started when it gets SIGTERM.
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def wait_for_jobs_api(url: str, timeout: float = 120.0) -> Any:
    from ray.job_submission import JobSubmissionClient

    end = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < end:
        try:
            client = JobSubmissionClient(url)
            client.list_jobs()
            return client
        except Exception as exc:  # the dashboard is still starting
            if "auth" in str(exc).lower():
                raise
            last = exc
            time.sleep(0.5)
    raise RuntimeError(f"Ray's job server at {url} did not come up: {last}")


def bench_tasks(n_latency: int, n_throughput: int, rounds: int) -> dict[str, Any]:
    import ray

    @ray.remote
    def noop() -> None:
        return None

    # Warm-up: export the function, start and reuse workers.
    for _ in range(3):
        ray.get([noop.remote() for _ in range(50)])
    for _ in range(20):
        ray.get(noop.remote())
    latencies = []
    for _ in range(n_latency):
        t0 = time.perf_counter()
        ray.get(noop.remote())
        latencies.append(time.perf_counter() - t0)
    rates = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        ray.get([noop.remote() for _ in range(n_throughput)])
        rates.append(n_throughput / (time.perf_counter() - t0))
    return {
        "latency_ms": stats_ms(latencies),
        "throughput_per_s": sorted(rates)[len(rates) // 2],
        "throughput_rounds": rates,
        "n_throughput": n_throughput,
    }


def wait_all(client: Any, ids: list[str], poll_s: float) -> dict[str, str]:
    """Poll Ray Jobs until every one of ``ids`` has ended; its final status by id."""
    pending = set(ids)
    statuses: dict[str, str] = {}
    while pending:
        for job in list(pending):
            status = str(client.get_job_status(job)).rsplit(".", 1)[-1]
            if status in ("SUCCEEDED", "FAILED", "STOPPED"):
                statuses[job] = status
                pending.discard(job)
        if pending:
            time.sleep(poll_s)
    return statuses


def run_job(client: Any, poll_s: float) -> dict[str, Any]:
    t0 = time.perf_counter()
    wall0 = time.time()
    job = client.submit_job(entrypoint="python -c pass")
    t_submitted = time.perf_counter()
    running = None
    while True:
        status = str(client.get_job_status(job))
        now = time.perf_counter()
        if status.endswith("RUNNING") and running is None:
            running = now
        if status.endswith(("SUCCEEDED", "FAILED", "STOPPED")):
            break
        time.sleep(poll_s)
    info = client.get_job_info(job)
    return {
        "id": job,
        "status": status.rsplit(".", 1)[-1],
        "submit_call_s": t_submitted - t0,
        "to_running_s": (running - t0) if running is not None else None,
        "to_succeeded_s": now - t0,
        # Ray's own timestamps (ms since the epoch): submit → start, start → end.
        "server_start_minus_submit_s": info.start_time / 1000 - wall0 if info.start_time else None,
        "server_run_s": (info.end_time - info.start_time) / 1000
        if info.end_time and info.start_time
        else None,
    }


def wait_for_agent(client: Any, timeout: float = 120.0) -> float:
    """Until a job can be submitted (the node's job agent registers after the dashboard)."""
    t0 = time.perf_counter()
    while True:
        try:
            job = client.submit_job(entrypoint="python -c pass")
            break
        except RuntimeError as exc:
            if "No available agent" not in str(exc) or time.perf_counter() - t0 > timeout:
                raise
            time.sleep(0.5)
    while str(client.get_job_status(job)).rsplit(".", 1)[-1] not in (
        "SUCCEEDED",
        "FAILED",
        "STOPPED",
    ):
        time.sleep(0.1)
    return time.perf_counter() - t0


def bench_jobs(client: Any, n_seq: int, n_burst: int, poll_s: float) -> dict[str, Any]:
    agent_s = wait_for_agent(client)
    for _ in range(2):  # warm-up
        run_job(client, poll_s)
    seq = [run_job(client, poll_s) for _ in range(n_seq)]
    failed = [j for j in seq if j["status"] != "SUCCEEDED"]
    to_running = [j["to_running_s"] for j in seq if j["to_running_s"] is not None]
    result: dict[str, Any] = {
        "agent_ready_s": agent_s,
        "sequential": seq,
        "sequential_failed": len(failed),
        "to_running_ms": stats_ms(to_running),
        "running_seen": len(to_running),
        "to_succeeded_ms": stats_ms([j["to_succeeded_s"] for j in seq]),
    }
    # n_burst at once: submitted from n_burst threads, then polled until all ended.
    t0 = time.perf_counter()
    with cf.ThreadPoolExecutor(n_burst) as pool:
        ids = list(
            pool.map(lambda _: client.submit_job(entrypoint="python -c pass"), range(n_burst))
        )
    submitted = time.perf_counter() - t0
    statuses = wait_all(client, ids, poll_s)
    result["burst"] = {
        "n": n_burst,
        "all_done_s": time.perf_counter() - t0,
        "submit_all_s": submitted,
        "succeeded": sum(1 for s in statuses.values() if s == "SUCCEEDED"),
    }
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--latency-tasks", type=int, default=200)
    parser.add_argument("--throughput-tasks", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--jobs", type=int, default=10)
    parser.add_argument("--burst", type=int, default=20)
    parser.add_argument("--poll-ms", type=float, default=10.0)
    args = parser.parse_args()

    # Token auth (Ray's default for local clusters since 2.59) with our own token, shared by
    # the head (ray start inherits this environment) and this driver; set before Ray is
    # imported, which reads the mode once.
    os.environ["RAY_AUTH_MODE"] = "token"
    os.environ["RAY_AUTH_TOKEN"] = secrets.token_hex(32)
    import ray

    temp = Path(tempfile.mkdtemp(prefix="rb-", dir="/tmp"))  # short: Ray's socket paths
    out: dict[str, Any] = {"ray": ray.__version__, "loadavg_start": loadavg()}
    proc, port, dashboard = start_head(temp)
    try:
        t0 = time.perf_counter()
        client = wait_for_jobs_api(f"http://127.0.0.1:{dashboard}")
        out["head_start_s"] = time.perf_counter() - t0
        ray.init(address=f"127.0.0.1:{port}", logging_level="ERROR", log_to_driver=False)
        out["tasks"] = bench_tasks(args.latency_tasks, args.throughput_tasks, args.rounds)
        ray.shutdown()
        out["jobs"] = bench_jobs(client, args.jobs, args.burst, args.poll_ms / 1000)
        out["jobs"]["poll_ms"] = args.poll_ms
    finally:
        with contextlib.suppress(Exception):
            ray.shutdown()
        stop_head(proc)
        shutil.rmtree(temp, ignore_errors=True)
    out["loadavg_end"] = loadavg()
    text = json.dumps(out, indent=1)
    if args.json:
        args.json.write_text(text)
    print(text)


if __name__ == "__main__":
    sys.exit(main())
