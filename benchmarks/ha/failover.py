"""Failover of the scheduler: kill -9 the leader of two servers on one PostgreSQL, N times.

    .venv/bin/python benchmarks/ha/failover.py [--kills 20] [--notify on|off] [--netns]

Two ``aimass server`` processes on loopback share a fresh PostgreSQL database
(created with psycopg on AIMASS_TEST_POSTGRES or 127.0.0.1:5432, dropped after)
and one artifact folder; with ``--netns``, each server runs as a host of its own
(a network namespace on a bridge, its own address) and PostgreSQL is the run's
own cluster on the bridge address (``tests/ha/netns.py``; needs root); leader lease 2 s,
job lease 5 s. Each round: a 30 s ``noop`` job runs on the leader; the leader
is killed with SIGKILL, a ``noop`` job is submitted to the survivor at once,
and the time from the kill until that job leaves ``queued`` is recorded; the
killed server is started again before the next round. Prints p50/p95/max of
that time, and checks that nothing ran twice: every job ended with exactly
one ``succeeded`` or ``cancelled`` event and the queued jobs ran one attempt.
Also prints submit -> running on the follower (NOTIFY on or off) over 50 jobs.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import tempfile
import time
import uuid
from datetime import datetime
from pathlib import Path

import psycopg

sys.path.insert(0, str(Path(__file__).parents[2] / "tests"))
sys.path.insert(0, str(Path(__file__).parents[1] / "jobs"))

from common import percentile

from ha.cluster import Cluster, noop, wait_job
from ha.netns import hosts, netns_unavailable

ADMIN = os.environ.get("AIMASS_TEST_POSTGRES", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


def _pct(values: list[float], q: float) -> float:
    """The ``q`` quantile (0..1), as ``benchmarks/jobs/common.percentile`` computes it."""
    return percentile(values, q * 100)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kills", type=int, default=20)
    parser.add_argument("--notify", choices=("on", "off"), default="on")
    parser.add_argument("--netns", action="store_true", help="each server a host of its own")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="aimass-failover-"))
    overrides = {"pg_notify": args.notify == "on"}
    if args.netns:
        reason = netns_unavailable()
        if reason is not None:
            sys.exit(f"--netns needs network namespaces: {reason}")
        with hosts() as (network, url):
            _run(Cluster(url, root, overrides=overrides, network=network), args)
        return
    name = f"aimass_failover_{uuid.uuid4().hex[:8]}"
    admin = ADMIN.replace("+psycopg", "")
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        _run(Cluster(ADMIN.rsplit("/", 1)[0] + "/" + name, root, overrides=overrides), args)
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _run(cluster: Cluster, args: argparse.Namespace) -> None:
    try:
        cluster.start_all()
        leader = cluster.wait_for_leader()
        follower = 1 - leader
        with cluster.nodes[follower].api() as api:
            waits, server = [], []
            for _ in range(50):
                sent = time.monotonic()
                job_id = noop(api)
                wait_job(api, job_id, lambda j: j["state"] != "queued")
                waits.append(time.monotonic() - sent)
                job = wait_job(api, job_id)
                created = datetime.fromisoformat(job["created_at"])
                server.append((datetime.fromisoformat(job["started_at"]) - created).total_seconds())
        print(
            f"submit on the follower -> running (NOTIFY {args.notify}, 50 jobs): client clock "
            f"p50 {_pct(waits, 0.5) * 1000:.0f} ms, p99 {_pct(waits, 0.99) * 1000:.0f} ms; "
            f"server's started_at - created_at p50 {_pct(server, 0.5) * 1000:.0f} ms, "
            f"p99 {_pct(server, 0.99) * 1000:.0f} ms (load average {os.getloadavg()[0]:.1f})"
        )
        took: list[float] = []
        jobs: list[int] = []
        for round_ in range(args.kills):
            leader = cluster.wait_for_leader()
            survivor = 1 - leader
            with cluster.nodes[leader].api() as api:
                running = noop(api, sleep_s=30)
                wait_job(api, running, lambda j: j["state"] == "running")
            with cluster.nodes[survivor].api() as api:
                killed = time.monotonic()
                cluster.signal(leader, signal.SIGKILL)
                job_id = noop(api)
                wait_job(api, job_id, lambda j: j["state"] != "queued", timeout=60)
                took.append(time.monotonic() - killed)
                wait_job(api, running, lambda j: j["attempt"] == 2 and j["state"] == "running")
                api.post(f"/api/v1/jobs/{running}/cancel")
                jobs += [running, job_id]
            print(f"kill {round_ + 1}: the survivor scheduled after {took[-1]:.2f} s", flush=True)
            cluster.start(leader)
        with cluster.nodes[0].api() as api:
            twice = []
            for job_id in jobs:
                job = wait_job(api, job_id)
                states = [e["state"] for e in api.get(f"/api/v1/jobs/{job_id}/events").json()]
                ends = states.count("succeeded") + states.count("cancelled")
                if ends != 1 or (job["state"] == "succeeded" and job["attempt"] != 1):
                    twice.append((job_id, states))
        print(
            f"{args.kills} kills: kill -> survivor schedules p50 {_pct(took, 0.5):.2f} s, "
            f"p95 {_pct(took, 0.95):.2f} s, max {max(took):.2f} s; "
            f"jobs that ran twice or ended twice: {len(twice)} {twice[:3]}"
        )
    finally:
        cluster.close()


if __name__ == "__main__":
    main()
