"""Jobs on two aimass servers sharing PostgreSQL, beside Ray Jobs on the same machine.

    .venv/bin/python benchmarks/jobs/two_servers.py [--jobs 500] [--latency 50] [--slots 4]
                                                    [--skip-ray] [--ray-jobs 500] [--quick]
                                                    [--commit REV] [--notify-on-only]
                                                    [--profile DIR]

``--quick``: 100 jobs, 10 latency samples, 50 Ray jobs (a few minutes on a quiet machine).

aimass: two ``aimass server`` processes on loopback (``tests/ha/cluster.py``) on a
fresh database on 127.0.0.1:5432 (``AIMASS_TEST_POSTGRES``), ``--slots`` job slots
(the local executor runs jobs on the leader). For NOTIFY on, then off (a fresh
cluster each):

1. submit -> running when the submit lands on the follower: ``--latency`` noop jobs
   one at a time, POSTed to the follower; the server's ``started_at - created_at``
   and the client's POST sent -> ``running`` (or ended) seen, GET every 5 ms;
2. throughput (NOTIFY on; off too with ``--throughput-both``): ``--jobs`` noop jobs
   POSTed from 4 threads, half to each server; jobs/s from the first POST to the last
   ``finished_at``.

Ray: a head node of its own (``ray_bench.start_head``: ``--num-cpus 2``, token auth,
free ports), ``JobSubmissionClient``: 20 one at a time (submit -> RUNNING seen,
``get_job_status`` every 10 ms), then ``--ray-jobs`` entrypoints ``python -c pass``
from 4 threads, until all SUCCEEDED: jobs/s.

``--commit REV`` runs the servers on that commit's src/ (A/B against the working tree);
the throughput run reports CPU ms per job of each server, the leader's zygote and
attempts (its children) and the database's backends (``/proc``, over the run).

Prints one JSON object and a short table; the machine's load average beside each.
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import contextlib
import json
import os
import shutil
import sys
import tempfile
import time
import uuid
from datetime import datetime
from pathlib import Path
from typing import Any

import psycopg

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE.parents[1] / "tests"))
sys.path.insert(0, str(HERE))

from common import child_pids, loadavg, proc_cpu_s, stats_ms  # noqa: E402

from ha.cluster import Cluster, noop  # noqa: E402

#: A venv with ``ray[default]`` (git-ignored) when the project's own has only ``ray``.
RAY_VENV = HERE / "work" / ".venv-ray"
ADMIN = os.environ.get("AIMASS_TEST_POSTGRES", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


def _ts(value: str) -> float:
    return datetime.fromisoformat(value).timestamp()


def _latency(cluster: Cluster, n: int) -> dict[str, Any]:
    leader = cluster.wait_for_leader()
    follower = 1 - leader
    server, client = [], []
    with cluster.nodes[follower].api() as api:
        for _ in range(3):  # warm-up
            noop(api)
        time.sleep(1.0)
        for _ in range(n):
            t0 = time.perf_counter()
            job_id = noop(api)
            while True:
                job = api.get(f"/api/v1/jobs/{job_id}").json()
                if job["state"] != "queued":
                    break
                time.sleep(0.005)
            client.append(time.perf_counter() - t0)
            server.append(_ts(job["started_at"]) - _ts(job["created_at"]))
            while api.get(f"/api/v1/jobs/{job_id}").json()["state"] == "running":
                time.sleep(0.005)
    return {
        "server_ms": stats_ms(server),
        "client_ms": stats_ms(client),
        "follower_submits": n,
        "load": loadavg(),
    }


def _tree_cpu_s(pid: int) -> float:
    """CPU seconds of ``pid`` and every live descendant, with the children each reaped."""
    total, todo = 0.0, [pid]
    while todo:
        p = todo.pop()
        try:
            total += proc_cpu_s(p, children=True)
        except OSError:
            continue
        todo += child_pids(p)
    return total


def _cpu_parts(cluster: Cluster, database: str) -> dict[str, float]:
    """CPU seconds so far: each server process alone, the leader's executor tree (its
    zygote and the attempts it reaped), and the database's backends serving ``database``."""
    leader = cluster.wait_for_leader()
    parts: dict[str, float] = {}
    for i, node in enumerate(cluster.nodes):
        role = "leader" if i == leader else "follower"
        parts[f"{role}_server"] = proc_cpu_s(node.pid)
        parts[f"{role}_children"] = _tree_cpu_s(node.pid) - parts[f"{role}_server"]
    admin = ADMIN.replace("+psycopg", "")
    with psycopg.connect(admin, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()",
            (database,),
        ).fetchall()
    backends = 0.0
    for (pid,) in rows:
        with contextlib.suppress(OSError):
            backends += proc_cpu_s(pid)
    parts["postgresql_backends"] = backends
    with psycopg.connect(admin, autocommit=True) as conn:
        commits = conn.execute(
            "SELECT xact_commit + xact_rollback FROM pg_stat_database WHERE datname = %s",
            (database,),
        ).fetchone()
    parts["transactions"] = float(commits[0]) if commits else 0.0
    with psycopg.connect(admin.rsplit("/", 1)[0] + "/" + database, autocommit=True) as conn:
        # Every leader-only transaction (placement's ticks above all) and lease renewal
        # updates the lease row once (``Leadership.fence``).
        tables = conn.execute(
            "SELECT relname, coalesce(seq_scan, 0) + coalesce(idx_scan, 0), n_tup_ins, "
            "n_tup_upd, n_tup_del FROM pg_stat_user_tables"
        ).fetchall()
    for table, scans, ins, upd, dele in tables:
        for what, count in (("scans", scans), ("ins", ins), ("upd", upd), ("del", dele)):
            parts[f"table:{table}:{what}"] = float(count)
    parts["lease_updates"] = parts.get("table:leader_leases:upd", 0.0)
    return parts


def _spy(cluster: Cluster, folder: str) -> list[Any]:
    """py-spy (raw collapsed stacks) on each server until stopped: where a job's CPU goes."""
    import signal
    import subprocess

    spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    leader = cluster.wait_for_leader()
    Path(folder).mkdir(parents=True, exist_ok=True)
    procs = []
    for i, node in enumerate(cluster.nodes):
        role = "leader" if i == leader else "follower"
        out = Path(folder) / f"{role}.txt"
        cmd = [spy, "record", "-p", str(node.pid), "-r", "200", "-f", "raw", "-o", str(out)]
        if os.environ.get("AIMASS_BENCH_SPY_GIL"):  # CPU only: samples of the GIL's holder
            cmd.append("--gil")
        procs.append(subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
    return [(p, signal.SIGINT) for p in procs]


def _throughput(
    cluster: Cluster, n: int, database: str, profile: str | None = None
) -> dict[str, Any]:
    apis = [node.api() for node in cluster.nodes]
    ids: list[int] = []
    spies = _spy(cluster, profile) if profile else []
    cpu_before = _cpu_parts(cluster, database)
    first = time.time()

    def submit(k: int) -> list[int]:
        api = apis[k % 2]
        return [noop(api) for _ in range(n // 4 + (1 if k < n % 4 else 0))]

    with cf.ThreadPoolExecutor(4) as pool:
        for part in pool.map(submit, range(4)):
            ids += part
    posted = time.time() - first
    # Until nothing is queued or running, asked as aimass_bench.py asks one server: one
    # queued and one running job at most per poll (listing every job each time would
    # cost the server more than a job does), from the follower so the leader runs jobs.
    watch = apis[1 - cluster.wait_for_leader()]
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        busy = [
            watch.get("/api/v1/jobs", params={"state": state, "limit": 1}).json()
            for state in ("queued", "running")
        ]
        if not any(busy):
            break
        time.sleep(0.05)
    cpu_after = _cpu_parts(cluster, database)
    for proc, sig in spies:
        proc.send_signal(sig)
        proc.wait(timeout=30)
    # Backends that came or went during the run count from zero or not at all: roughly.
    transactions = (cpu_after.pop("transactions") - cpu_before.pop("transactions")) / n
    fenced = (cpu_after.pop("lease_updates") - cpu_before.pop("lease_updates")) / n
    per_table: dict[str, float] = {}
    for key in [k for k in cpu_after if k.startswith("table:")]:
        delta = (cpu_after.pop(key) - cpu_before.pop(key, 0.0)) / n
        if delta >= 0.05:
            per_table[key.removeprefix("table:")] = round(delta, 2)
    cpu_ms = {k: 1000 * (cpu_after[k] - cpu_before.get(k, 0.0)) / n for k in cpu_after}
    cpu_ms["total"] = sum(cpu_ms.values())
    states: dict[str, int] = {}
    pending, last = set(ids), 0.0
    for job in apis[0].get("/api/v1/jobs", params={"limit": 1000}).json():
        if job["id"] in pending:
            states[job["state"]] = states.get(job["state"], 0) + 1
            if job["state"] in ("succeeded", "failed", "cancelled"):
                pending.discard(job["id"])
                last = max(last, _ts(job["finished_at"]))
    for api in apis:
        api.close()
    return {
        "jobs": n,
        "posted_s": posted,
        "wall_s": last - first,
        "jobs_per_s": n / (last - first) if last else 0.0,
        "states": states,
        "never_ended": len(pending),
        "cpu_ms_per_job": {k: round(v, 2) for k, v in cpu_ms.items()},
        # Every server's, the benchmark's own few polls included (pg_stat_database).
        "transactions_per_job": round(transactions, 1),
        "lease_row_updates_per_job": round(fenced, 2),
        # Scans (sequential + index), rows inserted, updated, deleted per job, by table.
        "table_ops_per_job": per_table,
        "load": loadavg(),
    }


def aimass(args: argparse.Namespace, notify: bool) -> dict[str, Any]:
    name = f"aimass_two_{uuid.uuid4().hex[:8]}"
    admin = ADMIN.replace("+psycopg", "")
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    root = Path(tempfile.mkdtemp(prefix="aimass-two-"))
    overrides = {"pg_notify": notify, "job_slots": float(args.slots), "job_lease_s": 30.0}
    cluster = Cluster(ADMIN.rsplit("/", 1)[0] + "/" + name, root, overrides=overrides)
    try:
        cluster.start_all()
        out: dict[str, Any] = {"latency": _latency(cluster, args.latency)}
        if notify or args.throughput_both:
            profile = f"{args.profile}/{'on' if notify else 'off'}" if args.profile else None
            out["throughput"] = _throughput(cluster, args.jobs, name, profile)
        return out
    finally:
        cluster.close()
        shutil.rmtree(root, ignore_errors=True)
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def ray_jobs(n: int) -> dict[str, Any]:
    """Ray Jobs on this machine (``ray_jobs.py``), in this interpreter when it has
    ``ray[default]`` (the dashboard's job server), else in ``work/.venv-ray``."""
    import importlib.util
    import subprocess

    if importlib.util.find_spec("aiohttp_cors") is not None:  # ray[default] is here
        import ray_jobs as rj

        return rj.ray_jobs(n)
    python = RAY_VENV / "bin" / "python"
    if not python.exists():
        raise SystemExit(
            f"Ray Jobs needs ray[default]: {RAY_VENV} is missing; make it with\n"
            f"  python3 -m venv {RAY_VENV} && {RAY_VENV}/bin/pip install 'ray[default]==2.60.0' "
            "httpx\n(or pass --skip-ray)"
        )
    out = subprocess.run(
        [str(python), str(HERE / "ray_jobs.py"), "--jobs", str(n)],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return dict(json.loads(out[out.index("{") :]))


SIDES = (("NOTIFY on", "notify_on"), ("NOTIFY off", "notify_off"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=500)
    parser.add_argument("--latency", type=int, default=50)
    parser.add_argument("--slots", type=int, default=4)
    parser.add_argument("--ray-jobs", type=int, default=500)
    parser.add_argument("--skip-ray", action="store_true")
    parser.add_argument(
        "--profile", metavar="DIR", help="py-spy each server during the throughput run (raw stacks)"
    )
    parser.add_argument("--quick", action="store_true", help="100 jobs, 10 samples, 50 Ray jobs")
    parser.add_argument("--ray-only", action="store_true", help="only the Ray Jobs side")
    parser.add_argument(
        "--throughput-both", action="store_true", help="the throughput run with NOTIFY off too"
    )
    parser.add_argument("--commit", help="run the servers on this commit's src/ (A/B runs)")
    parser.add_argument("--notify-on-only", action="store_true", help="skip the NOTIFY off run")
    args = parser.parse_args()
    if args.commit:
        import common

        common.use_commit(args.commit)
        os.environ["PYTHONPATH"] = os.pathsep.join(
            [str(common.SRC_PATH), *filter(None, [os.environ.get("PYTHONPATH")])]
        )
    if args.quick:
        args.jobs, args.latency, args.ray_jobs = 100, 10, 50
    if args.ray_only:
        result = ray_jobs(args.ray_jobs)
        print(json.dumps(result, indent=1))
        _print_ray(result)
        return
    out: dict[str, Any] = {"load_start": loadavg()}
    out["notify_on"] = aimass(args, notify=True)
    print(json.dumps({"notify_on": out["notify_on"]}), flush=True)
    if not args.notify_on_only:
        out["notify_off"] = aimass(args, notify=False)
        print(json.dumps({"notify_off": out["notify_off"]}), flush=True)
    if not args.skip_ray:
        out["ray_jobs"] = ray_jobs(args.ray_jobs)
    out["load_end"] = loadavg()
    print(json.dumps(out, indent=1))
    runs = [(label, out[key]) for label, key in SIDES if key in out]
    print("\n| | p50 | p99 | load |\n| --- | --- | --- | --- |")
    for label, part in ((label, run["latency"]) for label, run in runs):
        for side in ("server", "client"):
            ms = part[f"{side}_ms"]
            print(f"| aimass follower submit->running, {label}, {side} | {ms['p50']:.0f} ms | "
                  f"{ms['p99']:.0f} ms | {part['load']} |")  # fmt: skip
    if "ray_jobs" in out:
        ms = out["ray_jobs"]["to_running_ms"]
        print(f"| Ray Jobs submit->RUNNING (client) | {ms['p50']:.0f} ms | {ms['p99']:.0f} ms "
              f"| {out['ray_jobs']['load']} |")  # fmt: skip
    for label, part in runs:
        if "throughput" in part:
            t = part["throughput"]
            print(f"\naimass, two servers, PostgreSQL, {label}: {t['jobs']} jobs in "
                  f"{t['wall_s']:.1f} s = {t['jobs_per_s']:.1f} jobs/s ({t['states']}; "
                  f"load {t['load']})")  # fmt: skip
            print(f"  CPU ms per job: {t['cpu_ms_per_job']}")
    if "ray_jobs" in out:
        _print_ray(out["ray_jobs"])


def _print_ray(r: dict[str, Any]) -> None:
    print(f"Ray Jobs: {r['jobs']} jobs in {r['wall_s']:.1f} s = {r['jobs_per_s']:.1f} "
          f"jobs/s ({r['succeeded']} succeeded; load {r['load']})")  # fmt: skip


if __name__ == "__main__":
    main()
