"""The jobs benchmark: aimass's scheduler and local executor beside Ray, on this machine.

Run through run.sh:

    bash benchmarks/jobs/run.sh [--quick] [--skip-ray] [--skip-postgres] [--skip-whatif]

Sections, each on fresh servers, one after the other (nothing else of ours runs
meanwhile); before each, it waits (up to ``--quiet-wait`` s) for the machine's
other work to fall under 15 % of the CPUs, and records the reading:

1. ``breakdown.py``: where one noop job's time goes, step by step (quiet client,
   polling client, and the what-if changes patched in);
2. ``aimass_bench.py`` on SQLite: (a) one job at a time for each way of waiting,
   (b) 20 at once on two slots, (c) 500 from 4 submitters;
3. the same with the what-if changes patched in (``trace_server.py``): what the
   suggested changes in src/ would give;
4. the same on PostgreSQL (a fresh database, dropped after);
5. ``ray_bench.py``: Ray tasks and Ray Jobs on a head node of its own.

Writes RESULTS.md beside this file (and prints it); raw numbers in work/results.json.
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib.metadata as md
import json
import platform
import subprocess
import sys
import time
import traceback
from pathlib import Path
from typing import Any

import aimass_bench
import breakdown
import common
from common import HERE, ROOT, VENV_BIN, WORK, loadavg, wait_for_quiet

TARGETS = {
    "queued_to_running_p50_ms": 20.0,
    "submit_to_succeeded_p50_ms": 100.0,
    "burst_all_succeeded_s": 1.0,
    "throughput_jobs_per_s": 50.0,
}
WHATIF = ",".join(
    (
        "gc_freeze",
        "preload_entries",
        "threadpool_controller",
        "lazy_heartbeat",
        "early_exit",
        "sse_fast_follow",
    )
)


# ----------------------------------------------------------------------------- facts


def git_sha() -> str:
    def git(*args: str) -> str:
        return subprocess.run(
            ["git", *args], cwd=ROOT, capture_output=True, text=True, check=False
        ).stdout.strip()

    sha = git("rev-parse", "--short", "HEAD") or "unknown"
    dirty = git("status", "--porcelain", "--", "src")
    return f"{sha}{' + uncommitted changes in src/' if dirty else ''}"


def versions(commit: str | None = None) -> dict[str, str]:
    out = {"python": platform.python_version(), "aimass commit": commit or git_sha()}
    for name in ("aimass", "ray", "httpx", "fastapi", "uvicorn", "sqlalchemy", "psycopg"):
        try:
            out[name] = md.version(name)
        except md.PackageNotFoundError:
            out[name] = "not installed"
    return out


def machine() -> dict[str, str]:
    model = "unknown"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    with open("/proc/meminfo") as f:
        mem_kb = int(f.readline().split()[1])
    import os

    return {
        "cpu": model,
        "cores": str(len(os.sched_getaffinity(0))),
        "memory": f"{mem_kb / 1024 / 1024:.1f} GiB",
        "kernel": platform.release(),
    }


# ----------------------------------------------------------------------------- sections


def section(name: str, quiet_wait: float, run: Any) -> dict[str, Any]:
    print(f"== {name}", flush=True)
    quiet = wait_for_quiet(quiet_wait)
    started = dt.datetime.now(dt.UTC).strftime("%H:%M UTC")
    t0 = time.monotonic()
    result = run()
    return {
        "result": result,
        "started": started,
        "other_cpu_before": quiet["busy_before"],
        "waited_s": quiet["waited_s"],
        "took_s": time.monotonic() - t0,
        "loadavg_end": loadavg(),
    }


def run_ray(args: argparse.Namespace) -> dict[str, Any]:
    out = WORK / "ray.json"
    command = [str(VENV_BIN / "python"), str(HERE / "ray_bench.py"), "--json", str(out)]
    if args.quick:
        command += ["--latency-tasks", "50", "--jobs", "3", "--burst", "10", "--rounds", "1"]
    subprocess.run(command, cwd=HERE, check=True, stdout=subprocess.DEVNULL)
    return json.loads(out.read_text())


# ----------------------------------------------------------------------------- report


def f1(value: float | None, unit: str = "") -> str:
    return "n/a" if value is None else f"{value:,.1f}{unit}"


def met(value: float | None, target: float, below: bool = True) -> str:
    if value is None:
        return ""
    ok = value < target if below else value >= target
    return "met" if ok else "**NOT met**"


def best_wait(run: dict[str, Any]) -> dict[str, Any]:
    return min(run["sequential"], key=lambda s: s["submit_to_succeeded_ms"]["p50"])


def aimass_cells(run: dict[str, Any] | None) -> dict[str, str]:
    if run is None:
        return {}
    seq = best_wait(run)
    q, s = seq["queued_to_running_ms"], seq["submit_to_succeeded_ms"]
    b, t = run["burst"]["median"], run["throughput"]
    zyg = t["zygote_and_attempts_cpu_ms_per_job"]
    how = f"waiting by {seq['wait']}"
    return {
        "q2r": f"{f1(q['p50'])} / {f1(q['p99'])} ms ({met(q['p50'], 20)})",
        "s2s": f"{f1(s['p50'])} / {f1(s['p99'])} ms ({met(s['p50'], 100)}; {how})",
        "burst": f"{b['all_succeeded_s']:.2f} s ({met(b['all_succeeded_s'], 1.0)})",
        "tput": f"{t['jobs_per_s']:.1f} jobs/s ({met(t['jobs_per_s'], 50, below=False)})",
        "cpu": f"{t['server_cpu_ms_per_job']:.1f} ms",
        "zcpu": f"{zyg:.1f} ms" if zyg is not None else "n/a",
    }


def split_traces(
    traces: list[dict[str, Any]],
) -> tuple[dict[str, Any], list[dict[str, Any]], list[dict[str, Any]]]:
    """The first trace of each mode; the later quiet ones (drift checks); the single what-ifs."""
    modes: dict[str, Any] = {}
    for t in traces:
        if t["mode"] != "whatif" or len(t["whatif"]) > 1:
            modes.setdefault(t["mode"], t)
    again = [t for t in traces if t["mode"] == "quiet"][1:]
    singles = [t for t in traces if t["mode"] == "whatif" and len(t["whatif"]) == 1]
    return modes, again, singles


#: RESULTS.md from this line on is written by hand (two_servers.py runs): kept on rewrites.
KEPT = "<!-- kept by bench.py: results of other scripts below -->"


def _kept_tail() -> str:
    """The hand-written end of RESULTS.md (from ``KEPT`` on), or nothing."""
    path = HERE / "RESULTS.md"
    text = path.read_text() if path.exists() else ""
    at = text.find(KEPT)
    return "\n" + text[at:] if at >= 0 else ""


def report(data: dict[str, Any]) -> str:
    sections = data["sections"]
    runs = {k: sections[k]["result"] for k in ("sqlite", "whatif", "postgresql") if k in sections}
    titles = {
        "sqlite": "aimass, SQLite",
        "postgresql": "aimass, PostgreSQL",
        "whatif": "aimass, SQLite, with the suggested changes patched in (what-if)",
    }
    cols = [k for k in ("sqlite", "postgresql", "whatif") if k in runs]
    before = data.get("before")
    if before:
        label = before["code"].split(" (")[0]
        for k in ("sqlite", "postgresql", "whatif"):
            if k in before["sections"]:
                runs[f"before:{k}"] = before["sections"][k]["result"]
                cols.append(f"before:{k}")
        titles["before:sqlite"] = f"before ({label}), SQLite"
        titles["before:postgresql"] = f"before ({label}), PostgreSQL"
        titles["before:whatif"] = f"before ({label}), SQLite + what-if patches"
    cells = {k: aimass_cells(v) for k, v in runs.items()}
    ray = sections.get("ray", {}).get("result")
    lines: list[str] = []
    add = lines.append
    add("# Jobs benchmark results")
    add("")
    add("Produced by:")
    add("")
    for run in data["runs"]:
        add(
            f"- `{run['command_line']}` on {run['started']} (took {run['took_s'] / 60:.1f} min;"
            f" sections: {', '.join(run['sections'])})"
        )
    add("")
    add("## Machine and versions")
    add("")
    m = data["machine"]
    add(f"- CPU: {m['cpu']}, **{m['cores']} cores**, memory {m['memory']}, kernel {m['kernel']}")
    add(f"- aimass code benchmarked: {data['code']}")
    add(
        "- every server and Ray node on the same 2 cores as the client; AIMASS_JOB_SLOTS=2, "
        "`ray start --head --num-cpus 2`"
    )
    add(
        "- the machine is shared: before each section the benchmark waits (up to "
        f"{data['quiet_wait']:.0f} s) for other work to fall under 15 % of the CPUs; the "
        "reading is in the table below. Numbers taken while others used the CPUs are worse "
        "than on a quiet machine."
    )
    add("")
    add("| package | version |")
    add("| --- | --- |")
    for k, v in data["versions"].items():
        add(f"| {k} | {v} |")
    if "postgresql" in runs and runs["postgresql"].get("postgresql_version"):
        add(f"| PostgreSQL server | {runs['postgresql']['postgresql_version']} |")
    add("")
    add(
        "| section | started | other work on the CPUs before it | waited | took "
        "| load average after |"
    )
    add("| --- | --- | ---: | ---: | ---: | --- |")
    shown = list(sections.items())
    if data.get("before"):
        label = data["before"]["code"].split(" (")[0]
        shown += [(f"before ({label}): {k}", v) for k, v in data["before"]["sections"].items()]
    for name, sec in shown:
        add(
            f"| {name} | {sec.get('started', '')} | {sec['other_cpu_before'] * 100:.0f} % "
            f"| {sec['waited_s']:.0f} s | {sec['took_s']:.0f} s | {sec['loadavg_end']} |"
        )
    add("")
    add("## Commands")
    add("")
    add("```")
    add("bash benchmarks/jobs/run.sh                  # everything (5-10 minutes)")
    add("bash benchmarks/jobs/run.sh --commit HEAD    # a commit's src/, not the working tree")
    add("bash benchmarks/jobs/run.sh --only sqlite    # re-run one section, keep the others")
    add("bash benchmarks/jobs/run.sh --quick          # smoke test: fewer jobs")
    add(".venv/bin/python benchmarks/jobs/aimass_bench.py --database sqlite  # aimass only")
    add(".venv/bin/python benchmarks/jobs/aimass_bench.py --database postgresql")
    add(".venv/bin/python benchmarks/jobs/ray_bench.py                        # Ray only")
    add(".venv/bin/python benchmarks/jobs/breakdown.py                        # breakdown")
    add("```")
    add("")
    add("## Results against the targets")
    add("")
    header = "| measurement | target | " + " | ".join(titles[c] for c in cols) + " |"
    add(header)
    add("| --- | --- |" + " --- |" * len(cols))
    rows = [
        ("queued → running p50 / p99 (server: started_at - created_at)", "p50 < 20 ms", "q2r"),
        ("submit → succeeded p50 / p99 (client: POST sent → saw succeeded)", "p50 < 100 ms", "s2s"),
        (
            "20 trivial jobs at once, 2 slots: until all succeeded (median of rounds)",
            "≤ 1 s",
            "burst",
        ),
        ("500 no-op jobs, 4 submitters: first POST → last finished_at", "≥ 50 jobs/s", "tput"),
        (
            "server process CPU per job in the 500 run (scheduler + executor + the API's own work)",
            "",
            "cpu",
        ),
        ("zygote + attempt processes CPU per job in the 500 run (fork, child, exit)", "", "zcpu"),
    ]
    for title, target, key in rows:
        add(f"| {title} | {target} | " + " | ".join(cells[c][key] for c in cols) + " |")
    add("")
    add(
        "- queued → running uses the server's `started_at`, stamped when the scheduler's "
        "tick begins, before the attempt's process exists; the process is forked ~8 ms "
        'after the POST ("client POST → fork" in the breakdown below).'
    )
    add(
        "- submit → succeeded is on the client's clock, waiting by the way that gave the "
        "lowest p50 in that run (all three are in the details)."
    )
    if "whatif" in cols:
        add(
            "- the what-if column is not aimass as it stands: it is the same code with the "
            "changes proposed below monkeypatched in (`_trace_hooks.py`), to show what they "
            "would give."
        )
    add("")
    if ray:
        rt, rj = ray["tasks"], ray["jobs"]
        add("### Ray 2.60 on the same machine")
        add("")
        add("| measurement | Ray | closest aimass number (SQLite) |")
        add("| --- | --- | --- |")
        base = cells.get("sqlite", {})
        add(
            f"| `ray.remote` no-op task, warm, one at a time: `ray.get(f.remote())` p50 / p99 "
            f"| {rt['latency_ms']['p50']:.2f} / {rt['latency_ms']['p99']:.2f} ms "
            f"| submit → succeeded {base.get('s2s', 'n/a')} |"
        )
        add(
            f"| {rt['n_throughput']} no-op tasks at once (median of rounds) "
            f"| {rt['throughput_per_s']:,.0f} tasks/s | {base.get('tput', 'n/a')} |"
        )
        add(
            f"| Ray Jobs (`python -c pass`), one at a time: submit → RUNNING p50 "
            f"| {rj['to_running_ms']['p50']:,.0f} ms (seen in {rj['running_seen']} of "
            f"{rj['to_running_ms']['n'] if rj['running_seen'] else len(rj['sequential'])}) "
            f"| queued → running {base.get('q2r', 'n/a')} |"
        )
        add(
            f"| Ray Jobs, one at a time: submit → SUCCEEDED p50 / p99 "
            f"| {rj['to_succeeded_ms']['p50']:,.0f} / {rj['to_succeeded_ms']['p99']:,.0f} ms "
            f"| {base.get('s2s', 'n/a')} |"
        )
        add(
            f"| Ray Jobs, {rj['burst']['n']} at once: until all SUCCEEDED "
            f"| {rj['burst']['all_done_s']:.2f} s ({rj['burst']['succeeded']} succeeded) "
            f"| {base.get('burst', 'n/a')} |"
        )
        add("")
        add(
            f"Ray tasks are not jobs: no database, no record, no log file, no isolation beyond "
            f"a reused worker process; they are the floor a scheduler on this machine can "
            f"reach. Ray Jobs is the like-for-like: each job is recorded, gets a supervisor "
            f"actor and a fresh `python` process for its entrypoint. Ray Jobs were polled with "
            f"`get_job_status` every {rj['poll_ms']:.0f} ms. The head node took "
            f"{ray['head_start_s']:.1f} s to start; Ray ran with token authentication "
            f"(its default for local clusters since 2.59), as aimass runs with its bearer tokens."
        )
        add("")
    for key in [c for c in cols if not c.startswith("before:")]:
        run = runs[key]
        add(f"### {titles[key]}: details")
        add("")
        add("(a) one job at a time, by how the client waits for the end (ms):")
        add("")
        add(
            "| waiting by | n | queued → running p50 / p99 | submit → succeeded p50 / p99 "
            "| server created → finished p50 | POST p50 | server CPU per job |"
        )
        add("| --- | ---: | --- | --- | ---: | ---: | ---: |")
        for seq in run["sequential"]:
            q, s, c = (
                seq["queued_to_running_ms"],
                seq["submit_to_succeeded_ms"],
                seq["server_created_to_finished_ms"],
            )
            add(
                f"| {seq['wait']} | {seq['n']} | {q['p50']:.1f} / {q['p99']:.1f} "
                f"| {s['p50']:.1f} / {s['p99']:.1f} | {c['p50']:.1f} | "
                f"{seq['post_ms']['p50']:.1f} | {seq['server_cpu_ms_per_job']:.1f} |"
            )
        add("")
        by_cpu = min(run["sequential"], key=lambda q: q["server_cpu_ms_per_job"])
        by_lat = best_wait(run)
        add(
            f"Lowest overhead on the server: {by_cpu['wait']} "
            f"({by_cpu['server_cpu_ms_per_job']:.1f} ms of server CPU per job, the waiting "
            f"included); lowest latency: {by_lat['wait']} "
            f"(p50 {by_lat['submit_to_succeeded_ms']['p50']:.1f} ms), used in the table above."
        )
        add("")
        b = run["burst"]
        add(
            f"(b) {b['n']} at once: until all succeeded "
            + ", ".join(f"{r['all_succeeded_s']:.2f} s" for r in b["runs"])
            + f" (rounds); the POSTs themselves took {b['median']['posted_s'] * 1000:.0f} ms; "
            f"failed: {sum(r['failed'] for r in b['runs'])}."
        )
        add("")
        t = run["throughput"]
        add(
            f"(c) {t['n']} jobs from {t['submitters']} submitters: all POSTed in "
            f"{t['submit_s']:.2f} s ({t['submit_rate_per_s']:.0f} submits/s), last finished "
            f"{t['first_post_to_last_finished_s']:.2f} s after the first POST "
            f"({t['jobs_per_s']:.1f} jobs/s); {t['succeeded']} succeeded, {t['n_errors']} "
            f"refused; queued → running p50 {t['queued_to_running_ms']['p50']:.0f} ms "
            f"(jobs wait for a slot)."
        )
        add("")
    traces = sections.get("trace", {}).get("result")
    if traces:
        add("## Where one trivial job's time goes")
        add("")
        add(
            "From `breakdown.py`: the server, the zygote and each attempt run with timing hooks "
            "monkeypatched in (`_trace_hooks.py`; src/ unchanged) and log CLOCK_MONOTONIC "
            "marks to one file; each step runs from one mark to the next, so the steps' means "
            "add up to the total. Mean ms per job over the jobs after the warm-up. *quiet*: "
            "the client does not touch the server until the job is done (it watches the "
            "trace file); *poll 2 ms*: the client GETs the job every 2 ms; *what-if*: quiet, "
            "with the changes listed below (1-6) monkeypatched into that commit."
        )
        add("")
        modes, again, singles = split_traces(traces)
        columns = [
            (name, modes[m])
            for m, name in (("quiet", "quiet"), ("poll", "poll 2 ms"), ("whatif", "what-if"))
            if m in modes
        ]
        singles_base, singles_label = modes.get("quiet"), ""
        before = data.get("before")
        if before and before["sections"].get("trace"):
            label = before["code"].split(" (")[0]
            b_modes, b_again, b_singles = split_traces(before["sections"]["trace"]["result"])
            columns += [
                (f"before ({label}): {name}", b_modes[m])
                for m, name in (("quiet", "quiet"), ("whatif", "what-if"))
                if m in b_modes
            ]
            if not singles:
                singles, again = b_singles, b_again
                singles_base, singles_label = b_modes.get("quiet"), f" at {label}"
                modes = {**b_modes, "quiet": b_modes.get("quiet")}
        add("| step | " + " | ".join(name for name, _ in columns) + " | where |")
        add("| --- |" + " ---: |" * len(columns) + " --- |")
        steps: list[str] = []
        whats: dict[str, str] = {}
        for _, t in columns:
            for item in t["summary"]:
                if item["step"] not in steps:
                    steps.append(item["step"])
                whats.setdefault(item["step"], item["what"])
        for step in steps:
            vals = []
            for _, t in columns:
                found = next((i for i in t["summary"] if i["step"] == step), None)
                vals.append(f"{found['mean']:.2f}" if found else "-")
            add(f"| {step} | " + " | ".join(vals) + f" | {whats.get(step, '')} |")
        add(
            "| **sum of the chained steps** | "
            + " | ".join(f"**{t['sum_of_means']:.1f}**" for _, t in columns)
            + " | |"
        )
        add("")
        if singles and singles_base:
            quiet = {i["step"]: i["mean"] for i in singles_base["summary"]}
            drift = ""
            if again:
                drift = (
                    f"; the same baseline run again after them: "
                    f"{again[0]['sum_of_means']:.1f} ms, so compare the targeted steps rather "
                    "than the totals"
                )
            add(
                f"Each change alone{singles_label} (quiet client, {singles[0]['jobs']} jobs "
                f"each). Without changes the path took {singles_base['sum_of_means']:.1f} ms, "
                f"with all of them "
                f"{modes.get('whatif', {}).get('sum_of_means', float('nan')):.1f} ms{drift}:"
            )
            add("")
            add("| change | the steps it targets: without → with (ms, mean) | total alone |")
            add("| --- | --- | ---: |")
            for t in singles:
                change = t["whatif"][0]
                mine = {i["step"]: i["mean"] for i in t["summary"]}
                shown = "; ".join(
                    f"{k}: {quiet.get(k, float('nan')):.1f} → {mine.get(k, 0.0):.1f}"
                    for k in TARGETED.get(change, ())
                )
                add(f"| `{change}` | {shown} | {t['sum_of_means']:.1f} |")
            add("")
            add(
                "The gains overlap (the entry's import is slow mostly because of the GC "
                "walk, which `gc_freeze` and `preload_entries` each remove), so they do not "
                "add up; the fork and the exit also vary with the machine's load."
            )
            add("")
        add(SUGGESTIONS.strip())
        add("")
    return "\n".join(lines) + "\n"


#: The breakdown's steps each what-if change is meant to shorten.
TARGETED = {
    "gc_freeze": ("child: import the entry", "child: exit → zygote reaps"),
    "preload_entries": ("child: import the entry",),
    "threadpool_controller": ("child: env + limit threads",),
    "lazy_heartbeat": ("child: start the heartbeat thread", "child: import the entry"),
    "early_exit": ("child: exit → zygote reaps", "zygote: reap, 'exited' → executor thread"),
}

SUGGESTIONS = """
### What the breakdown found, what d85713e changed, and what is left

At 4bf32a8 the attempt itself (fork → child → exit) was almost all of the ~145 ms path;
the server's share (API, tick, finish) was ~12 ms and still is. The causes, in order of
size, and where d85713e (the commit measured above, "after") dealt with them:

1. **The first full GC in each attempt walked the zygote's objects** (numpy, pandas,
   sklearn, httpx, aimass), writing to their headers and so copying their pages: the noop
   entry's import (7 ms in a fresh process) took ~100 ms in the attempt. Fixed in d85713e:
   `gc.collect(); gc.freeze()` in `_zygote.main` (what-if `gc_freeze`: 101 → 13 ms).
2. **Each attempt imported its entry** (`aimass.jobs.builtin` pulls in `params` and
   `catalog`). Fixed: `LocalExecutor.__init__` preloads every target's module
   (`preload_entries`). The zygote grew from ~196 to ~214 MB RSS for it (the zoo's modules
   too), which the fork and the exit pay a little for.
3. **`_child._limit_threads` called `threadpoolctl.threadpool_limits`** (walks
   `/proc/self/maps` and every shared library: ~10 ms). Fixed: one `ThreadpoolController`
   built in `warm()`, and no call when the share is 1 thread (`threadpool_controller`).
4. **The exit and the reap** (teardown of the forked address space, SIGCHLD, waitpid:
   ~9 ms) were on the path. Fixed: the attempt writes its own `exited` event before
   `os._exit`, and `LocalExecutor._on_event` treats an `exited` that overtakes `started` as
   the start too (`early_exit`).
5. **The heartbeat's `httpx.Client`** was built at once (~20 ms of CPU); now after the
   first interval (`lazy_heartbeat`; no measurable effect on a noop, which ends first).
6. **SSE followers polled every 200 ms** (`routes/jobs.py` `_follow`): now every 20 ms
   for the first 5 s (`sse_fast_follow` tried 10 ms).

What is left, for the 500-job target (SQLite: ~44 jobs/s against ≥ 50) and for
PostgreSQL's burst (1.1 s against 1 s). At d85713e a job costs ~16 ms of server CPU and
~16 ms in the zygote and the attempt, ~32 ms of the two cores per job, before the
client's own share: the ceiling is ~60 jobs/s and the run gets ~44. So the remaining
work is CPU per job, not latency:

7. **The fork and the exit of a ~214 MB zygote** (~8 ms from fork to the child running,
   and the kernel's teardown after the early report: together most of the attempt side's
   ~16 ms of CPU). In a micro-benchmark `os.fork` + exit cost ~0.9 ms with numpy, httpx
   and aimass loaded (54 MB) against ~3 ms + ~3 ms with pandas and sklearn too (191 MB).
   Preload pandas/sklearn/the zoo only in a second zygote used by the entries that need
   them (entries could declare the libraries they import), and fork `noop`-like entries
   from a slim one. A pre-forked spare child (forked right after each start, waiting on a pipe
   for its spec) takes the fork off the latency path but not off the CPU.
8. **`Scheduler.tick`, once per start and once per end** (~25 % of the server's samples in
   py-spy during the 500-job run): every tick runs `expire_leases`, `enforce_timeouts`,
   `running_jobs` twice (once for lost attempts, once for placement: reuse the first) and
   `queued_jobs(64)`, which builds a pydantic `Job` for each of 64 rows
   (`JobRow.to_entity`, ~5 % of samples); select only the columns `place` needs, or scan
   `min(queue_scan, k * free slots)` rows. `create_job_token` + `latest_checkpoint` add
   ~1 ms per start.
9. **The exit path on the executor's reader thread** (`handle_exit`: `archive_log` copies
   even an empty log into the artifact store; `finish_attempt` ~3 ms: `claim` = UPDATE
   then reload, the event, a DELETE of the job's tokens): skip empty logs, and return the
   row from the UPDATE (RETURNING on PostgreSQL and SQLite ≥ 3.35) instead of reloading it.
10. **The API**: a POST costs ~3 ms before and in `submit_job` (the bearer-token lookup
    alone ~2 ms, paid again by every GET of a polling client). A short in-process cache
    of token hash → principal would take it off both; mind revocation (a deleted job
    token must stop a superseded attempt's heartbeat at once), so cache admin/user
    tokens only, for a second or so.

Minor: the zygote has a second thread, pyarrow's `jemalloc_bg_thd` (pandas imports
pyarrow); fork copies only the calling thread and jemalloc has fork handlers, so this is
safe, but `ARROW_DEFAULT_MEMORY_POOL=system` in the zygote's environment would avoid it.

How the client waits matters on 2 cores: a GET every 2 ms makes the server spend CPU and
GIL time on the polls that the attempt and the scheduler need (compare the quiet and
poll 2 ms columns); the SSE stream is now as fast as polling and the cheapest for the
server. The results table uses, per run, the wait with the lowest p50 (named there).
"""


def main() -> int | None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer jobs: a smoke test")
    parser.add_argument("--skip-ray", action="store_true")
    parser.add_argument("--skip-postgres", action="store_true")
    parser.add_argument("--skip-whatif", action="store_true")
    parser.add_argument("--skip-trace", action="store_true")
    parser.add_argument("--quiet-wait", type=float, default=120.0)
    parser.add_argument(
        "--commit",
        default=None,
        help="benchmark this commit's src/ (e.g. HEAD) instead of the working tree",
    )
    parser.add_argument(
        "--only",
        default="",
        help="re-run only these sections (trace,sqlite,whatif,postgresql,ray); the others "
        "are kept from the last run on the same code (work/results.json)",
    )
    parser.add_argument(
        "--before",
        type=Path,
        default=None,
        help="a results.json of an earlier commit, shown beside these results",
    )
    parser.add_argument(
        "--report-only",
        action="store_true",
        help="write RESULTS.md again from work/results.json, running nothing",
    )
    parser.add_argument("--command-line", default="bash benchmarks/jobs/run.sh")
    args = parser.parse_args()
    WORK.mkdir(parents=True, exist_ok=True)
    if args.report_only:
        text = report(json.loads((WORK / "results.json").read_text())) + _kept_tail()
        (HERE / "RESULTS.md").write_text(text)
        print(text)
        return
    code = "the working tree"
    if args.commit:
        code = f"commit {common.use_commit(args.commit)} (git archive; the working tree unused)"

    bench_args = argparse.Namespace(
        sequential=10 if args.quick else 50,
        warmup=2 if args.quick else 5,
        waits="poll-2ms,poll-10ms,sse",
        burst=20,
        burst_rounds=1 if args.quick else 3,
        throughput=100 if args.quick else 500,
        submitters=4,
    )
    started = dt.datetime.now(dt.UTC)
    t0 = time.monotonic()
    wanted = [
        name
        for name, skip in (
            ("trace", args.skip_trace),
            ("sqlite", False),
            ("whatif", args.skip_whatif),
            ("postgresql", args.skip_postgres),
            ("ray", args.skip_ray),
        )
        if not skip
    ]
    if args.only:
        wanted = [name for name in wanted if name in args.only.split(",")]
    data: dict[str, Any] = {
        "machine": machine(),
        "versions": versions(common.SRC_PATH and code.split()[1]),
        "code": code,
        "quiet_wait": args.quiet_wait,
        "runs": [],
        "sections": {},
    }
    previous = WORK / ("results-quick.json" if args.quick else "results.json")
    if args.only and previous.is_file():
        # Re-run some sections; keep the others from the last run on the same code.
        old = json.loads(previous.read_text())
        if old.get("code") != code or old.get("quick", False) != args.quick:
            raise SystemExit(
                f"--only: work/results.json is for {old.get('code')}, not {code}; run all"
            )
        data["runs"] = old.get("runs", [])
        data["sections"] = {k: v for k, v in old["sections"].items() if k not in wanted}
        if "before" in old:
            data["before"] = old["before"]
    data["quick"] = args.quick
    if args.before:
        path = args.before if args.before.is_file() else ROOT / args.before  # run.sh cds here
        old_data = json.loads(path.read_text())
        data["before"] = {"code": old_data["code"], "sections": old_data["sections"]}
    sections = data["sections"]
    n_trace, warm_trace = (8, 2) if args.quick else (20, 3)
    runners = {
        "trace": (
            "trace: one job's path",
            lambda: (
                [
                    breakdown.trace_mode(mode, n_trace, warm_trace, None, set(WHATIF.split(",")))
                    for mode in ("quiet", "poll", "whatif")
                    if mode != "whatif" or not args.skip_whatif
                ]
                + [
                    # Each change alone (the SSE one does not touch this path).
                    breakdown.trace_mode("whatif", n_trace // 2, warm_trace, None, {change})
                    for change in WHATIF.split(",")
                    if change != "sse_fast_follow" and not args.skip_whatif
                ]
                # The baseline again, to show how much the machine drifted meanwhile.
                + [
                    breakdown.trace_mode("quiet", n_trace // 2, warm_trace, None, set())
                    for _ in range(0 if args.skip_whatif else 1)
                ]
            ),
        ),
        "sqlite": ("aimass on SQLite", lambda: aimass_bench.run("sqlite", bench_args)),
        "whatif": (
            "aimass on SQLite with the what-if changes",
            lambda: aimass_bench.run("sqlite", bench_args, WHATIF),
        ),
        "postgresql": (
            "aimass on PostgreSQL",
            lambda: aimass_bench.run("postgresql", bench_args),
        ),
        "ray": ("Ray", lambda: run_ray(args)),
    }
    failures: dict[str, str] = {}
    for name in wanted:
        title, run = runners[name]
        try:
            sections[name] = section(title, args.quiet_wait, run)
        except Exception as exc:  # one section's failure must not lose the others' results
            traceback.print_exc()
            failures[name] = f"{type(exc).__name__}: {exc}".splitlines()[0]
            sections.pop(name, None)
    data["failures"] = failures
    order = list(runners)
    data["sections"] = dict(sorted(sections.items(), key=lambda kv: order.index(kv[0])))
    data["runs"].append(
        {
            "command_line": args.command_line,
            "started": started.strftime("%Y-%m-%d %H:%M UTC"),
            "took_s": time.monotonic() - t0,
            "sections": wanted,
        }
    )
    previous.write_text(json.dumps(data, indent=1, default=str))
    text = report(data)
    if failures:
        text += "\n## Sections that failed\n\n" + "".join(
            f"- {name}: {reason} (its results are missing above)\n"
            for name, reason in failures.items()
        )
    if not args.quick:
        (HERE / "RESULTS.md").write_text(text + _kept_tail())
    else:
        (WORK / "RESULTS-quick.md").write_text(text)
    print(text)
    return 1 if failures else None


if __name__ == "__main__":
    sys.exit(main())
