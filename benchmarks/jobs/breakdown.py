"""Where the time goes for one trivial job, submit → succeeded, step by step.

    .venv/bin/python benchmarks/jobs/breakdown.py [--jobs 30] [--warmup 5] [--json out.json]

Starts ``trace_server.py`` (``aimass server`` with the hooks of ``_trace_hooks``
monkeypatched in: nothing in src/ changes) and submits noop jobs one at a time,
in two client modes:

- ``quiet``: POST, then wait without touching the server (the client watches
  the trace file for the exit commit), then one GET to check the job succeeded.
  This is the server's own path, with nothing else competing for its GIL.
- ``poll``: POST, then GET the job every 2 ms until it shows succeeded (what
  ``bench.py`` does for its latency numbers): the same path with the polling
  requests competing with it on two cores.

Every process on the path (server, zygote, the attempt) appends
``<CLOCK_MONOTONIC ns> <pid> <label>`` to one trace file; the client marks its
own POST and when it saw the job succeed. Each step's duration is the gap
between two marks, and the steps tile the whole span, so they add up to the
total. Prints the median of each step over the jobs (after the warm-up) and
writes the raw numbers to ``--json``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from common import HERE, NOOP, VENV_BIN, WORK, AimassServer, free_port, parse_ts

#: The path as a chain of marks: (step, from mark, to mark, what happens there). Each
#: step starts where the one before it ended, so the steps add up to the total; a mark
#: is its first occurrence after the job's POST.
STEPS: list[tuple[str, str, str, str]] = [
    (
        "client → server",
        "client.post.begin",
        "http.POST.api/v1/jobs.begin",
        "httpx sends the POST; uvicorn parses it",
    ),
    (
        "API: auth, validation → submit_job",
        "http.POST.api/v1/jobs.begin",
        "api.submit_job.begin",
        "RequestGuard, bearer-token lookup in the DB, FastAPI body validation, session open",
    ),
    (
        "API: submit_job (INSERT job + event)",
        "api.submit_job.begin",
        "api.submit_job.end",
        "jobs/service.py submit_job: project row, params check, INSERT job, flush, INSERT event",
    ),
    (
        "API: commit",
        "api.submit_job.end",
        "api.submit.commit.end",
        "the route's transaction commits (SQLite WAL / PostgreSQL)",
    ),
    (
        "wake → scheduler task runs",
        "api.submit.commit.end",
        "scheduler.run_once.begin",
        "wake_scheduler → LoopService's event → the event loop runs the scheduler task",
    ),
    (
        "run_once → tick (to_thread)",
        "scheduler.run_once.begin",
        "tick.begin",
        "asyncio.to_thread hands tick to a worker thread",
    ),
    (
        "tick: leader, leases, timeouts, queue, place",
        "tick.begin",
        "tick.start_attempt.begin",
        "scheduler.py tick: try_acquire, expire_leases, enforce_timeouts, running_jobs x2, "
        "queued_jobs, place",
    ),
    (
        "tick: start_attempt",
        "tick.start_attempt.begin",
        "tick.start_attempt.end",
        "service.start_attempt: conditional UPDATE, reload, INSERT event",
    ),
    (
        "tick: create_job_token + latest_checkpoint",
        "tick.start_attempt.end",
        "tick.latest_checkpoint.end",
        "auth.service.create_job_token, records.latest_checkpoint",
    ),
    (
        "tick: waiting reasons, deadline, commit",
        "tick.latest_checkpoint.end",
        "tick.commit.end",
        "set_waiting_reasons, _next_deadline, the tick's commit",
    ),
    (
        "tick: _submit, make scratch dir",
        "tick.commit.end",
        "tick.submit.make_scratch.end",
        "Scheduler._submit (env, AttemptSpec), LocalExecutor._make_scratch",
    ),
    (
        "executor: send 'start' to the zygote",
        "tick.submit.make_scratch.end",
        "zygote.fork.begin",
        "_child_spec, JSON line on the zygote's stdin, the zygote wakes and parses it",
    ),
    (
        "zygote: fork → child runs",
        "zygote.fork.begin",
        "child.run_attempt.begin",
        "os.fork of the pre-imported zygote (numpy, pandas, sklearn …) until the child runs",
    ),
    (
        "child: setsid, die-with-parent",
        "child.run_attempt.begin",
        "child.redirect.begin",
        "_child.run_attempt: os.setsid, prctl(PR_SET_PDEATHSIG), umask",
    ),
    (
        "child: redirect stdout/stderr to the log",
        "child.redirect.begin",
        "child.redirect.end",
        "_child._redirect: mkdir logs/job-N, open the attempt's log",
    ),
    (
        "child: env + limit threads",
        "child.redirect.end",
        "child.limit_threads.end",
        "os.environ.update; _child._limit_threads: threadpoolctl.threadpool_limits",
    ),
    (
        "child: start the heartbeat thread",
        "child.limit_threads.end",
        "child.start_heartbeat.end",
        "chdir, sys.path, runtime.heartbeat.start_heartbeat",
    ),
    (
        "child: import the entry",
        "child.start_heartbeat.end",
        "child.import_entry.end",
        "import aimass.jobs.builtin.noop (and aimass.jobs.builtin: params, catalog)",
    ),
    ("child: run the entry", "child.import_entry.end", "child.write_result.begin", "noop.run"),
    (
        "child: write the result file",
        "child.write_result.begin",
        "child.run_attempt.end",
        "_child._write_result",
    ),
    (
        "child: exit → zygote reaps",
        "child.run_attempt.end",
        "zygote.reap.begin",
        "os._exit; the kernel tears down the forked address space; SIGCHLD wakes the zygote",
    ),
    (
        "zygote: reap, 'exited' → executor thread",
        "zygote.reap.begin",
        "executor.event.exited.begin",
        "Zygote.reap (killpg, waitpid), the event over the pipe, LocalExecutor._read_events",
    ),
    (
        "executor: read result, rm scratch, exit hook",
        "executor.event.exited.begin",
        "exit.archive_log.begin",
        "LocalExecutor._finish: result JSON, shutil.rmtree(scratch); Scheduler.handle_exit",
    ),
    (
        "exit: archive the log",
        "exit.archive_log.begin",
        "exit.archive_log.end",
        "jobs/logs.py archive_log → ArtifactStore.put_file (also for an empty log)",
    ),
    (
        "exit: finish_attempt",
        "exit.archive_log.end",
        "exit.finish_attempt.end",
        "session open; service.finish_attempt: claim (UPDATE + reload), event, delete tokens",
    ),
    ("exit: commit", "exit.finish_attempt.end", "exit.commit.end", "the finish's transaction"),
    (
        "commit → client sees succeeded",
        "exit.commit.end",
        "client.seen",
        "the client's next GET (poll mode) / its watch of the trace file (quiet mode)",
    ),
    # Not on the chain: shown for information.
    (
        "(info) zygote: os.fork() in the parent",
        "zygote.fork.begin",
        "zygote.fork.end",
        "the parent's side of the fork, plus its 'started' event",
    ),
    (
        "(info) client: POST round trip",
        "client.post.begin",
        "client.post.end",
        "what the client waits for its 201",
    ),
]

#: Steps that overlap others (not added into the total).
OVERLAPPING = {s[0] for s in STEPS if s[0].startswith("(info)")}

#: With the ``early_exit`` what-if the attempt reports its end itself: this replaces the
#: two steps from its exit to the executor's reader thread.
EARLY_EXIT_STEPS = [
    (
        "child: reports its end on the event pipe",
        "child.run_attempt.end",
        "executor.event.exited.begin",
        "the attempt writes 'exited' itself before os._exit (d85713e; what-if early_exit)",
    ),
]
WHATIFS = (
    "gc_freeze",
    "preload_entries",
    "threadpool_controller",
    "lazy_heartbeat",
    "early_exit",
    "sse_fast_follow",
)


def steps_for(whatif: set[str]) -> list[tuple[str, str, str, str]]:
    if "early_exit" not in whatif:
        return STEPS
    out = []
    for step in STEPS:
        if step[0] == "child: exit → zygote reaps":
            out += EARLY_EXIT_STEPS
        elif step[0] != "zygote: reap, 'exited' → executor thread":
            out.append(step)
    return out


class Tracer:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)

    def mark(self, label: str) -> None:
        os.write(self.fd, f"{time.monotonic_ns()} {os.getpid()} {label}\n".encode())

    def lines_from(self, offset: int) -> tuple[list[tuple[int, int, str]], int]:
        with self.path.open("rb") as f:
            f.seek(offset)
            data = f.read()
        cut = data.rfind(b"\n") + 1
        out = []
        for line in data[:cut].decode().splitlines():
            ns, pid, label = line.split(" ", 2)
            out.append((int(ns), int(pid), label))
        return out, offset + cut


def wait_quiet(tracer: Tracer, offset: int, timeout: float = 10.0) -> None:
    """Wait until the trace shows the exit commit, without a request to the server."""
    end = time.monotonic() + timeout
    seen = offset
    while time.monotonic() < end:
        lines, seen = tracer.lines_from(seen)
        if any(label == "exit.commit.end" for _, _, label in lines):
            return
        time.sleep(0.0005)
    raise TimeoutError("the job did not finish in the trace")


def run_jobs(server: AimassServer, tracer: Tracer, mode: str, n: int) -> list[dict[str, Any]]:
    jobs = []
    with server.client() as http:
        for _ in range(n):
            _, offset = tracer.lines_from(0)
            tracer.mark("client.post.begin")
            response = http.post("/api/v1/jobs", json=NOOP)
            response.raise_for_status()
            tracer.mark("client.post.end")
            job_id = response.json()["id"]
            if mode == "poll":
                while True:
                    job = http.get(f"/api/v1/jobs/{job_id}").json()
                    if job["state"] in ("succeeded", "failed", "cancelled"):
                        break
                    time.sleep(0.002)
                tracer.mark("client.seen")
            else:
                wait_quiet(tracer, offset)
                tracer.mark("client.seen")
                job = http.get(f"/api/v1/jobs/{job_id}").json()
            if job["state"] != "succeeded":
                raise RuntimeError(f"job {job_id} {job['state']}: {job.get('reason')}")
            jobs.append({"id": job_id, "offset": offset, "job": job})
            time.sleep(0.05)  # let the server settle (log archiving, GC) before the next
    return jobs


def first(marks: list[tuple[int, int, str]], label: str, after: int) -> int | None:
    for ns, _, lab in marks:
        if ns >= after and lab == label:
            return ns
    return None


def breakdown(
    tracer: Tracer, jobs: list[dict[str, Any]], steps: list[tuple[str, str, str, str]]
) -> list[dict[str, float]]:
    """Per job: each step's duration in ms, plus the total and the server's own spans."""
    marks, _ = tracer.lines_from(0)
    marks.sort()
    posts = [ns for ns, _, label in marks if label == "client.post.begin"]
    rows = []
    for i, item in enumerate(jobs):
        start = posts[i]
        end = posts[i + 1] if i + 1 < len(posts) else 1 << 62
        window = [m for m in marks if start <= m[0] < end]
        row: dict[str, float] = {}
        reported = first(window, "executor.event.exited.begin", start)
        reaped = first(window, "zygote.reap.begin", start)
        if reported is not None and (reaped is None or reported < reaped):
            steps = steps_for({"early_exit"})  # the attempt reported its own end
        for name, a, b, _ in steps:
            ta, tb = first(window, a, start), first(window, b, start)
            row[name] = (tb - ta) / 1e6 if ta is not None and tb is not None else float("nan")
        seen = first(window, "client.seen", start)
        row["total (client POST → saw succeeded)"] = (seen - start) / 1e6 if seen else float("nan")
        fork = first(window, "zygote.fork.begin", start)
        row["client POST → fork"] = (fork - start) / 1e6 if fork else float("nan")
        job = item["job"]
        row["server: created_at → started_at"] = (
            parse_ts(job["started_at"]) - parse_ts(job["created_at"])
        ) * 1000
        row["server: started_at → finished_at"] = (
            parse_ts(job["finished_at"]) - parse_ts(job["started_at"])
        ) * 1000
        rows.append(row)
    return rows


def summarize(
    rows: list[dict[str, float]], steps: list[tuple[str, str, str, str]]
) -> list[dict[str, Any]]:
    """Per step: median, mean and max over the jobs (ms), and what happens there."""
    out = []
    keys = list(dict.fromkeys(k for r in rows for k in r))
    for key in keys:
        values = [r[key] for r in rows if key in r and r[key] == r[key]]
        what = next((w for n, _, _, w in steps if n == key), "")
        if values:
            out.append(
                {
                    "step": key,
                    "median": statistics.median(values),
                    "mean": statistics.fmean(values),
                    "max": max(values),
                    "what": what,
                }
            )
    return out


def trace_mode(
    mode: str, jobs: int, warmup: int, database_url: str | None, whatif: set[str]
) -> dict[str, Any]:
    """Run one mode (quiet / poll / whatif) on a fresh server; its rows and summary."""
    WORK.mkdir(parents=True, exist_ok=True)
    label = "-".join([mode, *sorted(whatif)]) if mode == "whatif" and len(whatif) == 1 else mode
    stamp = time.strftime("%Y%m%d-%H%M%S")
    home = Path(tempfile.mkdtemp(prefix=f"trace-{label}-{stamp}-", dir=WORK))
    trace_file = home / "trace.txt"
    trace_file.touch()
    tracer = Tracer(trace_file)
    env = {"AIMASS_BENCH_TRACE": str(trace_file)}
    if mode == "whatif":
        env["AIMASS_BENCH_WHATIF"] = ",".join(sorted(whatif))
    server = AimassServer(
        home=home / "home",
        port=free_port(),
        slots=2,
        database_url=database_url,
        command=[str(VENV_BIN / "python"), str(HERE / "trace_server.py")],
        extra_env=env,
    )
    with server:
        done = run_jobs(server, tracer, "poll" if mode == "poll" else "quiet", warmup + jobs)
    steps = steps_for(whatif if mode == "whatif" else set())
    rows = breakdown(tracer, done, steps)[warmup:]
    every = steps + [s for s in EARLY_EXIT_STEPS if s not in steps]
    summary = summarize(rows, every)
    # The chain the jobs took (the code under test may report the end early itself).
    tiled = {s[0] for s in every if s[0] in rows[0]} - OVERLAPPING
    total = sum(item["mean"] for item in summary if item["step"] in tiled)
    return {
        "mode": mode,
        "whatif": sorted(whatif) if mode == "whatif" else [],
        "jobs": len(rows),
        "warmup": warmup,
        "rows": rows,
        "summary": summary,
        "tiled": sorted(tiled),
        "sum_of_means": total,
        "trace_file": str(trace_file),
    }


def print_mode(result: dict[str, Any]) -> None:
    extra = f" with {', '.join(result['whatif'])}" if result["whatif"] else ""
    print(
        f"\n== {result['mode']}{extra}: {result['jobs']} noop jobs "
        f"(after {result['warmup']} warm-up); ms"
    )
    print("    mean  median     max  step")
    for item in result["summary"]:
        note = " (overlaps)" if item["step"] in OVERLAPPING else ""
        print(f"{item['mean']:8.2f} {item['median']:7.2f} {item['max']:7.2f}  {item['step']}{note}")
    print(f"{result['sum_of_means']:8.2f}  sum of the chained steps' means")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--modes", default="quiet,poll,whatif")
    parser.add_argument(
        "--whatif",
        default=",".join(WHATIFS),
        help=f"changes for the whatif mode (of {', '.join(WHATIFS)})",
    )
    parser.add_argument("--database-url", default=None)
    parser.add_argument("--commit", default=None, help="run this commit's src/ (e.g. HEAD)")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    if args.commit:
        import common

        common.use_commit(args.commit)
    whatif = {w for w in args.whatif.split(",") if w}
    unknown = whatif - set(WHATIFS)
    if unknown:
        parser.error(f"unknown what-if: {', '.join(sorted(unknown))}")
    results = []
    for mode in args.modes.split(","):
        result = trace_mode(mode, args.jobs, args.warmup, args.database_url, whatif)
        print_mode(result)
        results.append(result)
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    sys.exit(main())
