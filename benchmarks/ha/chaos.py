"""Chaos: N short jobs across two servers while either one is killed or paused at random.

    .venv/bin/python benchmarks/ha/chaos.py [--jobs 1000] [--faults 50] [--gap 4] [--seed 16]
                                            [--loopback] [--keep]

Two ``aimass server`` processes as separate hosts (network namespaces on a bridge,
a PostgreSQL of its own on the bridge address: ``tests/ha/netns.py``; needs root),
or on loopback sharing a fresh database on 127.0.0.1:5432 with ``--loopback``.
Leader lease 2 s, job lease 5 s, 4 job slots. Each job (``tests/ha/scripts/
versioned.py``) registers one model version. Jobs are submitted at an even pace
over ``faults * gap`` seconds with a fault every ``gap`` seconds: SIGKILL of a
random server (started again at once) or SIGSTOP (SIGCONT after 3 s, past the
leader lease). A ``* * * * *`` schedule runs beside it. At the end: every job
must have succeeded exactly once (one ``succeeded`` event, as many ``running``
events as attempts, exactly one registered version naming it), and the schedule
must have fired once per minute boundary passed. Prints the summary; exit 1 on
any problem. ``--keep`` leaves the cluster running on a problem until Enter.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parents[2] / "tests"))

from ha.chaos import run_chaos
from ha.cluster import Cluster
from ha.netns import hosts, netns_unavailable

ADMIN = os.environ.get("AIMASS_TEST_POSTGRES", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
OVERRIDES = {"job_lease_s": 5.0, "leader_lease_s": 2.0}


def _run(cluster: Cluster, args: argparse.Namespace) -> int:
    try:
        cluster.start_all()
        print(f"two servers up: {[n.url for n in cluster.nodes]}", flush=True)
        report = run_chaos(
            cluster,
            args.jobs,
            args.faults,
            seed=args.seed,
            gap_s=args.gap,
            say=lambda line: print(line, flush=True),
        )
        print(report.summary())
        for problem in report.problems[:30]:
            print("  problem:", problem)
        if report.problems and args.keep:
            input(f"cluster kept under {cluster.root}; Enter stops it ")
        return 1 if report.problems else 0
    finally:
        cluster.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=1000)
    parser.add_argument("--faults", type=int, default=50)
    parser.add_argument("--gap", type=float, default=4.0, help="seconds between faults")
    parser.add_argument("--seed", type=int, default=16)
    parser.add_argument("--loopback", action="store_true", help="no namespaces")
    parser.add_argument("--keep", action="store_true")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="aimass-chaos-"))
    print(f"uptime: {os.getloadavg()}", flush=True)
    started = time.monotonic()
    if args.loopback:
        import psycopg

        name = f"aimass_chaos_{uuid.uuid4().hex[:8]}"
        admin = ADMIN.replace("+psycopg", "")
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        try:
            url = ADMIN.rsplit("/", 1)[0] + "/" + name
            code = _run(Cluster(url, root, overrides=OVERRIDES), args)
        finally:
            with psycopg.connect(admin, autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    else:
        reason = netns_unavailable()
        if reason is not None:
            sys.exit(f"separate hosts need network namespaces: {reason} (or use --loopback)")
        with hosts() as (network, url):
            code = _run(Cluster(url, root, overrides=OVERRIDES, network=network), args)
    print(f"total {time.monotonic() - started:.0f} s; uptime after: {os.getloadavg()}")
    sys.exit(code)


if __name__ == "__main__":
    main()
