"""Ray Jobs on this machine, the side ``two_servers.py`` prints beside aimass.

    benchmarks/jobs/work/.venv-ray/bin/python benchmarks/jobs/ray_jobs.py [--jobs 500]

Needs ``ray[default]`` (the dashboard's job server: the ``ray-jobs-bench`` extra),
which the project's own .venv does not carry: ``two_servers.py`` runs this script
in ``benchmarks/jobs/work/.venv-ray`` (git-ignored), made with

    python3 -m venv benchmarks/jobs/work/.venv-ray
    benchmarks/jobs/work/.venv-ray/bin/pip install 'ray[default]==2.60.0' httpx

A head node of its own (``ray_bench.start_head``: ``--num-cpus 2``, token auth, free
ports), ``JobSubmissionClient``: 20 jobs one at a time (submit -> RUNNING seen,
``get_job_status`` every 10 ms), then ``--jobs`` entrypoints ``python -c pass`` from 4
threads, until all SUCCEEDED: jobs/s. Prints one JSON object.
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import json
import os
import secrets
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from common import loadavg, stats_ms


def ray_jobs(n: int) -> dict[str, Any]:
    """20 jobs one at a time (submit -> RUNNING seen), then ``n`` from 4 threads: jobs/s."""
    os.environ["RAY_AUTH_MODE"] = "token"
    os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"  # the head stays on 127.0.0.1
    os.environ["RAY_AUTH_TOKEN"] = secrets.token_hex(32)
    import ray
    from ray_bench import (
        run_job,
        start_head,
        stop_head,
        wait_all,
        wait_for_agent,
        wait_for_jobs_api,
    )

    temp = Path(tempfile.mkdtemp(prefix="rb-", dir="/tmp"))
    proc, _, dashboard = start_head(temp)
    try:
        client = wait_for_jobs_api(f"http://127.0.0.1:{dashboard}")
        wait_for_agent(client)
        seq = [run_job(client, 0.01) for _ in range(20)]
        to_running = [j["to_running_s"] for j in seq if j["to_running_s"] is not None]
        t0 = time.perf_counter()
        with cf.ThreadPoolExecutor(4) as pool:
            ids = list(pool.map(lambda _: client.submit_job(entrypoint="python -c pass"), range(n)))
        statuses = wait_all(client, ids, 0.2)
        wall = time.perf_counter() - t0
        return {
            "ray": ray.__version__,
            "to_running_ms": stats_ms(to_running),
            "jobs": n,
            "wall_s": wall,
            "jobs_per_s": n / wall,
            "succeeded": sum(1 for s in statuses.values() if s == "SUCCEEDED"),
            "load": loadavg(),
        }
    finally:
        stop_head(proc)
        shutil.rmtree(temp, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=500)
    args = parser.parse_args()
    print(json.dumps(ray_jobs(args.jobs), indent=1))


if __name__ == "__main__":
    main()
