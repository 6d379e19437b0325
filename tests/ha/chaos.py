"""Short jobs across a two-server cluster while either server is killed or paused at random.

Shared by ``test_netns.py`` (a small run) and ``benchmarks/ha/chaos.py`` (1,000 jobs,
50 faults). Each job is ``scripts/versioned.py``: it registers one version of one
model, so a job that ran twice shows as a second version with the same job in its
lineage. A ``* * * * *`` schedule runs beside it, for "fires once per tick".

Faults come one at a time, evenly spaced: a random server gets SIGKILL (started
again at once) or SIGSTOP (continued after ``pause_s``, past the leader lease).
Submissions go to a server that is up; a server is marked down (under its lock,
so no submission is in flight to it) before it is signalled, so no job is
created that the run does not know of.
"""

from __future__ import annotations

import contextlib
import json
import math
import random
import signal
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx

from ha.cluster import TERMINAL, Cluster

SCRIPTS = Path(__file__).parent / "scripts"
CRON_MARK = 0.0125  # the scheduled noop's sleep_s: how its jobs are told apart
#: An ONNX Identity model (70 bytes) that each job registers (onnx.helper, opset 13, IR 8).
IDENTITY_ONNX = (
    "CAg6PAoQCgF4EgF5IghJZGVudGl0eRICaWRaEQoBeBIMCgoIARIGCgAK"
    "AggBYhEKAXkSDAoKCAESBgoACgIIAUIECgAQDQ=="
)


@dataclass
class ChaosReport:
    """What a run did and what it found."""

    jobs: list[int] = field(default_factory=list)
    faults: list[tuple[float, int, str]] = field(default_factory=list)
    restarts: list[float] = field(default_factory=list)
    wall_s: float = 0.0
    states: Counter[str] = field(default_factory=Counter)
    attempts: Counter[int] = field(default_factory=Counter)
    versions: int = 0
    cron_ticks: int = 0
    cron_fired: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    def summary(self) -> str:
        kinds = Counter(kind for _, _, kind in self.faults)
        return (
            f"{len(self.jobs)} jobs, {len(self.faults)} faults ({dict(kinds)}) in "
            f"{self.wall_s:.1f} s (restarts took {self.restarts} s): states "
            f"{dict(self.states)}, attempts per job {dict(sorted(self.attempts.items()))}, "
            f"{self.versions} versions registered, "
            f"cron: {len(self.cron_fired)} fired for {self.cron_ticks} ticks; "
            f"{len(self.problems)} problem(s)"
        )


class _Chaos:
    def __init__(self, cluster: Cluster, rng: random.Random, pause_s: float) -> None:
        self.cluster = cluster
        self.rng = rng
        self.pause_s = pause_s
        self.up = [True] * cluster.size
        self.locks = [threading.Lock() for _ in range(cluster.size)]
        self.clients = [n.api(timeout=10) for n in cluster.nodes]

    def refresh(self, i: int) -> None:
        """Node ``i`` was started again: a new token and client."""
        self.clients[i].close()
        self.clients[i] = self.cluster.nodes[i].api(timeout=10)

    def call(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """One request on a server that is up (the other one while it is down), retried."""
        deadline = time.monotonic() + 120
        while True:
            for i in self.rng.sample(range(self.cluster.size), self.cluster.size):
                with self.locks[i]:
                    if not self.up[i]:
                        continue
                    with contextlib.suppress(httpx.HTTPError):
                        answer = self.clients[i].request(method, path, **kwargs)
                        if answer.status_code < 500:
                            return answer
            assert time.monotonic() < deadline, f"{method} {path}: no server answered"
            time.sleep(0.1)

    def fault(self, report: ChaosReport, started: float) -> None:
        i = self.rng.randrange(self.cluster.size)
        kind = self.rng.choice(("kill", "stop"))
        with self.locks[i]:
            self.up[i] = False
            self.cluster.signal(i, signal.SIGKILL if kind == "kill" else signal.SIGSTOP)
        report.faults.append((round(time.monotonic() - started, 2), i, kind))
        if kind == "kill":
            begun = time.monotonic()
            self.cluster.start(i)
            report.restarts.append(round(time.monotonic() - begun, 2))
            self.refresh(i)
        else:
            time.sleep(self.pause_s)
            self.cluster.signal(i, signal.SIGCONT)
        with self.locks[i]:
            self.up[i] = True

    def close(self) -> None:
        for client in self.clients:
            client.close()


def run_chaos(
    cluster: Cluster,
    jobs: int,
    faults: int,
    *,
    seed: int = 16,
    gap_s: float = 3.0,
    model: str = "chaos",
    say: Callable[[str], None] = lambda _: None,
) -> ChaosReport:
    """Submit ``jobs`` jobs at an even pace over ``faults * gap_s`` seconds with a fault every
    ``gap_s``; wait for them all; count attempts, versions and the cron's firings."""
    rng = random.Random(seed)
    chaos = _Chaos(cluster, rng, pause_s=cluster.nodes[0].settings.leader_lease_s + 1.0)
    report = ChaosReport()
    source = (SCRIPTS / "versioned.py").read_bytes()
    cron = {
        "name": f"chaos-{seed}",
        "cron": "* * * * *",
        "job": {"kind": "train", "entry": "noop", "params": {"sleep_s": CRON_MARK}},
    }
    answer = chaos.call("POST", "/api/v1/schedules", json=cron)
    assert answer.status_code == 201, answer.text
    cron_from = time.time()
    started = time.monotonic()
    window = max(1.0, faults * gap_s)

    def submit() -> None:
        for n in range(jobs):
            time.sleep(max(0.0, started + n * window / jobs - time.monotonic()))
            params = {"model": model, "onnx": IDENTITY_ONNX}
            spec = {"kind": "script", "entry": "versioned.py:main", "params": params}
            answer = chaos.call(
                "POST",
                "/api/v1/jobs/script",
                files={"source": ("versioned.py", source, "text/x-python")},
                data={"spec": json.dumps(spec)},
            )
            assert answer.status_code == 201, answer.text
            report.jobs.append(answer.json()["id"])

    submitter = threading.Thread(target=submit, daemon=True)
    submitter.start()
    try:
        for n in range(faults):
            time.sleep(max(0.0, started + (n + 0.5) * gap_s - time.monotonic()))
            chaos.fault(report, started)
            say(f"fault {n + 1}/{faults}: {report.faults[-1]}")
        submitter.join(timeout=window + 300)
        assert not submitter.is_alive(), "the submissions did not finish"
        say(f"{len(report.jobs)} jobs submitted after {time.monotonic() - started:.1f} s")
        _wait_all(chaos, report, timeout=max(120.0, jobs * 0.5))
        report.wall_s = time.monotonic() - started
        say(f"all ended after {report.wall_s:.1f} s")
        # The schedule is switched off at least 3 s after a minute began: no tick is underway.
        while (time.time() % 60) < 3 or (time.time() % 60) > 57:
            time.sleep(0.2)
        cron_to = time.time()
        off = chaos.call("PATCH", f"/api/v1/schedules/{cron['name']}", json={"enabled": False})
        assert off.status_code == 200, off.text
        time.sleep(1.5)  # a firing that began before the switch has committed its job
        _count(chaos, report, model, cron_from, cron_to)
    finally:
        chaos.close()
    return report


def _jobs(chaos: _Chaos, **params: Any) -> list[dict[str, Any]]:
    """Every job of the project that matches ``params``, page by page."""
    found: list[dict[str, Any]] = []
    cursor: str | None = None
    while True:
        query = {**params, "limit": 1000, **({"after": cursor} if cursor else {})}
        answer = chaos.call("GET", "/api/v1/jobs", params=query)
        found += answer.json()
        cursor = answer.headers.get("X-Next-Cursor")
        if cursor is None:
            return found


def _wait_all(chaos: _Chaos, report: ChaosReport, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    pending = set(report.jobs)
    while pending:
        pending -= {j["id"] for j in _jobs(chaos, kind="script") if j["state"] in TERMINAL}
        if pending and time.monotonic() > deadline:
            report.problems.append(f"{len(pending)} job(s) never ended: {sorted(pending)[:10]}")
            return
        if pending:
            time.sleep(0.5)


def _count(
    chaos: _Chaos, report: ChaosReport, model: str, cron_from: float, cron_to: float
) -> None:
    for job_id in report.jobs:
        job = chaos.call("GET", f"/api/v1/jobs/{job_id}").json()
        events = chaos.call("GET", f"/api/v1/jobs/{job_id}/events").json()
        states = [e["state"] for e in events]
        report.states[job["state"]] += 1
        report.attempts[job["attempt"]] += 1
        if job["state"] != "succeeded" or states.count("succeeded") != 1:
            report.problems.append(f"job {job_id}: {job['state']}, events {states}")
        if states.count("running") != job["attempt"]:
            report.problems.append(f"job {job_id}: {job['attempt']} attempts, events {states}")
    versions = chaos.call("GET", f"/api/v1/models/{model}/versions").json()
    report.versions = len(versions)
    made_by = Counter(v["lineage"]["job_id"] for v in versions)
    for job_id in report.jobs:
        if made_by[str(job_id)] != 1:
            report.problems.append(f"job {job_id} registered {made_by[str(job_id)]} version(s)")
    if len(versions) != len(report.jobs):
        report.problems.append(f"{len(versions)} versions for {len(report.jobs)} jobs")
    # Cron: one job per minute boundary passed while the schedule was on.
    report.cron_ticks = math.floor(cron_to / 60) - math.floor(cron_from / 60)
    fired = [j for j in _jobs(chaos, entry="noop") if j["params"].get("sleep_s") == CRON_MARK]
    minutes = [datetime.fromisoformat(j["created_at"]).strftime("%H:%M") for j in fired]
    report.cron_fired = sorted(minutes)
    if len(fired) != report.cron_ticks or len(set(minutes)) != len(minutes):
        report.problems.append(
            f"cron fired {len(fired)} time(s) at {sorted(minutes)} for {report.cron_ticks} tick(s)"
        )
    for j in fired:
        if j["state"] != "succeeded":
            report.problems.append(f"scheduled job {j['id']} ended {j['state']}")
