"""aimass's jobs, local executor, through the REST API with httpx.

    .venv/bin/python benchmarks/jobs/aimass_bench.py [--database sqlite|postgresql] [--json F]

One ``aimass server`` (``AIMASS_JOB_SLOTS=2``) per run, on SQLite under a fresh
home or on a fresh PostgreSQL database (created with psycopg, dropped after).
Every job is the built-in ``noop`` (``{"kind": "train", "entry": "noop"}``).

a. One at a time, ``--sequential`` jobs after a warm-up, once per way of
   waiting for the end: GET the job every 2 ms, every 10 ms, or follow
   ``GET /jobs/{id}/logs?follow=true`` (SSE) until its ``end`` event.
   queued → running is ``started_at - created_at`` (the server's timestamps);
   submit → succeeded is the client's clock from sending the POST until it
   sees ``succeeded``. Also: the server's own ``finished_at - created_at``, and
   the server process's CPU per job (the waiting requests included).
b. ``--burst`` jobs POSTed at once (one connection each, asyncio), then the
   newest jobs listed every 5 ms until all succeeded: time from the first POST
   to all succeeded (client clock; and last ``finished_at`` - first POST).
c. ``--throughput`` jobs POSTed as fast as possible by ``--submitters``
   threads (one keep-alive connection each): jobs/s from the first POST to the
   last ``finished_at``; the server process's CPU time (``/proc/<pid>/stat``,
   all its threads: the API's work on the POSTs is in it) and the zygote's
   (with the attempts it forked and reaped), each per job.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
from common import (
    HERE,
    NOOP,
    TERMINAL,
    VENV_BIN,
    WORK,
    AimassServer,
    free_port,
    loadavg,
    parse_ts,
    proc_cpu_s,
    stats_ms,
)

PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"


# ----------------------------------------------------------------------------- waiting


def wait_poll(http: httpx.Client, job_id: int, interval: float) -> dict[str, Any]:
    while True:
        job = http.get(f"/api/v1/jobs/{job_id}").json()
        if job["state"] in TERMINAL:
            return job
        time.sleep(interval)


def wait_sse(http: httpx.Client, job_id: int) -> dict[str, Any]:
    with http.stream("GET", f"/api/v1/jobs/{job_id}/logs", params={"follow": "true"}) as stream:
        event = None
        for line in stream.iter_lines():
            if line.startswith("event: "):
                event = line[7:]
            elif line.startswith("data: ") and event == "end":
                return json.loads(line[6:])
    raise RuntimeError(f"job {job_id}: the log stream closed without an end event")


WAITS = {
    "poll-2ms": lambda http, job_id: wait_poll(http, job_id, 0.002),
    "poll-10ms": lambda http, job_id: wait_poll(http, job_id, 0.010),
    "sse": wait_sse,
}


# ----------------------------------------------------------------------------- scenarios


def sequential(server: AimassServer, wait: str, n: int, warmup: int) -> dict[str, Any]:
    """(a) one job at a time; returns latency statistics (ms) and CPU per job."""
    waiter = WAITS[wait]
    queued_to_running, submit_to_succeeded, server_total, post = [], [], [], []
    with server.client() as http:
        for _ in range(warmup):
            job_id = http.post("/api/v1/jobs", json=NOOP).json()["id"]
            waiter(http, job_id)
        cpu0 = proc_cpu_s(server.pid)
        for _ in range(n):
            t0 = time.perf_counter()
            response = http.post("/api/v1/jobs", json=NOOP)
            t1 = time.perf_counter()
            response.raise_for_status()
            job = waiter(http, response.json()["id"])
            t2 = time.perf_counter()
            if job["state"] != "succeeded":
                raise RuntimeError(f"job {job['id']} {job['state']}: {job.get('reason')}")
            post.append(t1 - t0)
            submit_to_succeeded.append(t2 - t0)
            created = parse_ts(job["created_at"])
            queued_to_running.append(parse_ts(job["started_at"]) - created)
            server_total.append(parse_ts(job["finished_at"]) - created)
            time.sleep(0.01)  # between jobs, not timed
        cpu = proc_cpu_s(server.pid) - cpu0
    return {
        "wait": wait,
        "n": n,
        "queued_to_running_ms": stats_ms(queued_to_running),
        "submit_to_succeeded_ms": stats_ms(submit_to_succeeded),
        "server_created_to_finished_ms": stats_ms(server_total),
        "post_ms": stats_ms(post),
        "server_cpu_ms_per_job": cpu / n * 1000,
    }


async def _burst_once(server: AimassServer, n: int) -> dict[str, Any]:
    limits = httpx.Limits(max_connections=n, max_keepalive_connections=n)
    async with httpx.AsyncClient(
        base_url=server.url, headers=server.headers, timeout=30, limits=limits
    ) as http:
        # Open the n connections first, so the burst is n requests, not n TCP handshakes.
        await asyncio.gather(*(http.get("/api/v1/jobs/entries") for _ in range(n)))
        wall0 = time.time()
        t0 = time.perf_counter()
        responses = await asyncio.gather(*(http.post("/api/v1/jobs", json=NOOP) for _ in range(n)))
        t_posted = time.perf_counter() - t0
        ids = {r.raise_for_status().json()["id"] for r in responses}
        while True:
            jobs = (await http.get("/api/v1/jobs", params={"limit": n})).json()
            mine = [j for j in jobs if j["id"] in ids]
            if len(mine) == n and all(j["state"] in TERMINAL for j in mine):
                break
            await asyncio.sleep(0.005)
        t_done = time.perf_counter() - t0
    failed = [j for j in mine if j["state"] != "succeeded"]
    last_finish = max(parse_ts(j["finished_at"]) for j in mine)
    return {
        "all_succeeded_s": t_done,
        "server_last_finished_s": last_finish - wall0,
        "posted_s": t_posted,
        "failed": len(failed),
    }


def burst(server: AimassServer, n: int, rounds: int) -> dict[str, Any]:
    """(b) n jobs at once, ``rounds`` times."""
    runs = []
    for _ in range(rounds):
        runs.append(asyncio.run(_burst_once(server, n)))
        time.sleep(0.3)
    ordered = sorted(runs, key=lambda r: r["all_succeeded_s"])
    return {"n": n, "median": ordered[len(ordered) // 2], "runs": runs}


def throughput(server: AimassServer, n: int, submitters: int) -> dict[str, Any]:
    """(c) n jobs as fast as possible from ``submitters`` threads."""
    zygote = server.zygote_pid()
    per = [n // submitters + (1 if i < n % submitters else 0) for i in range(submitters)]
    ids: list[int] = []
    errors: list[str] = []
    lock = threading.Lock()
    clients = [server.client() for _ in range(submitters)]
    for http in clients:
        http.get("/api/v1/jobs/entries")  # connect first
    start = threading.Barrier(submitters + 1)

    def submit(http: httpx.Client, count: int) -> None:
        start.wait()
        mine = []
        for _ in range(count):
            r = http.post("/api/v1/jobs", json=NOOP)
            if r.status_code != 201:
                with lock:
                    errors.append(r.text[:200])
                continue
            mine.append(r.json()["id"])
        with lock:
            ids.extend(mine)

    pairs = zip(clients, per, strict=True)
    threads = [threading.Thread(target=submit, args=pair) for pair in pairs]
    for t in threads:
        t.start()
    cpu_server0 = proc_cpu_s(server.pid)
    cpu_zygote0 = proc_cpu_s(zygote, children=True) if zygote else 0.0
    wall0 = time.time()
    t0 = time.perf_counter()
    start.wait()
    for t in threads:
        t.join()
    t_submitted = time.perf_counter() - t0
    with server.client() as http:
        # Done when nothing is queued or running (cheap: limit=1), checked every 50 ms.
        while True:
            queued = http.get("/api/v1/jobs", params={"state": "queued", "limit": 1}).json()
            running = http.get("/api/v1/jobs", params={"state": "running", "limit": 1}).json()
            if not queued and not running:
                break
            time.sleep(0.05)
        t_done = time.perf_counter() - t0
        cpu_server = proc_cpu_s(server.pid) - cpu_server0
        cpu_zygote = (proc_cpu_s(zygote, children=True) - cpu_zygote0) if zygote else None
        jobs = http.get("/api/v1/jobs", params={"limit": 1000}).json()
    for http in clients:
        http.close()
    mine = [j for j in jobs if j["id"] in set(ids)]
    succeeded = [j for j in mine if j["state"] == "succeeded"]
    last_finish = max(parse_ts(j["finished_at"]) for j in succeeded)
    span = last_finish - wall0
    return {
        "n": n,
        "submitters": submitters,
        "succeeded": len(succeeded),
        "errors": errors[:5],
        "n_errors": len(errors),
        "submit_s": t_submitted,
        "submit_rate_per_s": len(ids) / t_submitted,
        "first_post_to_last_finished_s": span,
        "jobs_per_s": len(succeeded) / span,
        "client_done_seen_s": t_done,
        "server_cpu_ms_per_job": cpu_server / n * 1000,
        "zygote_and_attempts_cpu_ms_per_job": cpu_zygote / n * 1000 if cpu_zygote else None,
        "queued_to_running_ms": stats_ms(
            [parse_ts(j["started_at"]) - parse_ts(j["created_at"]) for j in succeeded]
        ),
    }


# ----------------------------------------------------------------------------- databases


def create_pg_database() -> tuple[str, str]:
    import psycopg

    name = f"aimass_bench_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
        version = conn.execute("SHOW server_version").fetchone()[0]
    return name, str(version)


def drop_pg_database(name: str) -> None:
    import psycopg

    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def run(database: str, args: argparse.Namespace, whatif: str = "") -> dict[str, Any]:
    """All three scenarios on one fresh server. ``whatif`` (comma-separated, see
    ``_trace_hooks``) runs ``trace_server.py`` with those changes patched in instead."""
    label = f"{database}-whatif" if whatif else database
    WORK.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    home = Path(tempfile.mkdtemp(prefix=f"aimass-{label}-{stamp}-", dir=WORK))
    out: dict[str, Any] = {"database": database, "whatif": whatif, "loadavg_start": loadavg()}
    command = None
    extra_env: dict[str, str] = {}
    if whatif:
        command = [str(VENV_BIN / "python"), str(HERE / "trace_server.py")]
        extra_env["AIMASS_BENCH_WHATIF"] = whatif
    pg_name = None
    url = None
    if database == "postgresql":
        pg_name, out["postgresql_version"] = create_pg_database()
        url = f"postgresql+psycopg://postgres@127.0.0.1:5432/{pg_name}"
    try:
        server = AimassServer(
            home=home,
            port=free_port(),
            slots=2,
            database_url=url,
            command=command,
            extra_env=extra_env,
        )
        with server:
            out["sequential"] = [
                sequential(server, wait, args.sequential, args.warmup)
                for wait in args.waits.split(",")
            ]
            out["burst"] = burst(server, args.burst, args.burst_rounds)
            out["throughput"] = throughput(server, args.throughput, args.submitters)
    finally:
        if pg_name:
            drop_pg_database(pg_name)
    out["loadavg_end"] = loadavg()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument("--sequential", type=int, default=50)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--waits", default=",".join(WAITS))
    parser.add_argument("--burst", type=int, default=20)
    parser.add_argument("--burst-rounds", type=int, default=3)
    parser.add_argument("--throughput", type=int, default=500)
    parser.add_argument("--submitters", type=int, default=4)
    parser.add_argument("--whatif", default="", help="changes to patch in (see breakdown.py)")
    parser.add_argument("--commit", default=None, help="run this commit's src/ (e.g. HEAD)")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    if args.commit:
        import common

        common.use_commit(args.commit)
    result = run(args.database, args, args.whatif)
    text = json.dumps(result, indent=1)
    if args.json:
        args.json.write_text(text)
    print(text)


if __name__ == "__main__":
    sys.exit(main())
