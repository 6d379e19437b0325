"""``aimass jobs``: submit entries or your own code, follow logs, show, wait, cancel, retry."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal, cast

import typer

from aimass.cli._job_format import (
    DatasetOpt,
    DatasetVersionOpt,
    ParamOpt,
    ParamsJsonOpt,
    cells,
    describe_params,
    format_duration,
    metric_series,
    outcome,
    parse_params,
    trend,
)
from aimass.cli._session import (
    JsonOpt,
    dump,
    format_mapping,
    format_time,
    open_client,
    print_json,
    stdout_console,
    transfer,
)

if TYPE_CHECKING:
    from rich.table import Table

    from aimass.client import Client
    from aimass.entities.jobs import Job

app = typer.Typer(
    name="jobs",
    help="Run jobs: catalogue entries (train, evaluate, ...) or your own code, on the cluster.",
    no_args_is_help=True,
)

# The same words as aimass.entities.jobs, spelled out so `--help` needs no pydantic.
Kind = Literal["train", "evaluate", "batch_predict", "tune", "script"]
State = Literal["queued", "running", "succeeded", "failed", "cancelled"]

IdArg = Annotated[int, typer.Argument(help="The job's id.", min=1)]
FollowOpt = Annotated[
    bool, typer.Option("--follow", "-f", help="Stream the log live until the job ends.")
]


def follow(client: Client, job_id: int, *, log_to_stderr: bool = False) -> Job:
    """Print the job's log as it comes, a rule between attempts, and return the final job."""
    from aimass.client import AttemptStarted, LogEnd, LogLine

    final: Job | None = None
    try:
        for event in client.jobs.follow_logs(job_id):
            if isinstance(event, LogLine):
                typer.echo(event.line, err=log_to_stderr)
            elif isinstance(event, AttemptStarted) and event.attempt > 1:
                typer.echo(f"── attempt {event.attempt} ──", err=log_to_stderr)
            elif isinstance(event, LogEnd):
                final = event.job
    except KeyboardInterrupt:
        typer.echo(f"stopped following job {job_id}; it goes on running", err=True)
        raise typer.Exit(130) from None
    assert final is not None  # follow_logs always ends with LogEnd
    typer.echo(outcome(final), err=True)
    return final


def entry_kind(client: Client, entry: str) -> Kind:
    """The kind an entry runs when --kind is left out: train if it can, else its only one."""
    for found in client.jobs.entries():
        kinds = found.get("kinds")
        if found.get("name") == entry and isinstance(kinds, list) and kinds:
            return "train" if "train" in kinds else cast("Kind", str(kinds[0]))
    return "train"  # an unknown entry: the server's answer names the known ones


@app.command("submit")
def submit(
    ctx: typer.Context,
    entry: Annotated[
        str,
        typer.Argument(
            help="A catalogue entry (see `jobs entries`) or, with --script, a function."
        ),
    ],
    kind: Annotated[
        Kind | None,
        typer.Option(
            "--kind",
            help="What the job does (default: the entry's kind, train when it has several; "
            "script with --script).",
        ),
    ] = None,
    param: ParamOpt = None,
    params_json: ParamsJsonOpt = None,
    dataset: DatasetOpt = None,
    dataset_version: DatasetVersionOpt = None,
    cpu: Annotated[float, typer.Option("--cpu", help="CPUs the job holds.")] = 1.0,
    gpu: Annotated[int, typer.Option("--gpu", min=0, help="GPUs the job holds.")] = 0,
    memory_mb: Annotated[
        int | None, typer.Option("--memory-mb", min=1, help="Memory it holds, in MB.")
    ] = None,
    priority: Annotated[int, typer.Option("--priority", help="Higher runs first.")] = 0,
    max_retries: Annotated[
        int, typer.Option("--max-retries", min=0, help="Attempts again after a failure.")
    ] = 0,
    timeout: Annotated[
        float | None, typer.Option("--timeout", min=0, help="Seconds an attempt may run.")
    ] = None,
    script: Annotated[
        Path | None,
        typer.Option("--script", help="Your code: a .py file, .zip/.tar.gz archive or folder."),
    ] = None,
    follow_: FollowOpt = False,
    json_: JsonOpt = False,
    quiet: Annotated[
        bool,
        typer.Option("--quiet", "-q", help="Print only the job's id, for scripts: JOB=$(... -q)."),
    ] = False,
) -> None:
    """Queue a job; with -f, stream its log and exit 0 only if it succeeded.

    Example: aimass jobs submit sklearn_logreg --dataset iris --param C=0.5 -f

    Example: JOB=$(aimass jobs submit noop -q) && aimass jobs logs $JOB -f

    Example: aimass jobs submit train.py:main --script ./project --param epochs=3 -f
    """
    params = parse_params(param, params_json)
    options: dict[str, Any] = {
        "kind": kind or ("script" if script else None),
        "params": params,
        "dataset": dataset,
        "dataset_version": dataset_version,
        "cpu": cpu,
        "gpu": gpu,
        "memory_mb": memory_mb,
        "priority": priority,
        "max_retries": max_retries,
        "timeout_s": timeout,
    }
    with open_client(ctx) as client:
        if script is None:
            options["kind"] = options["kind"] or entry_kind(client, entry)
            job = client.jobs.submit(entry, **options)
        else:
            with transfer(f"uploading {script.name}") as progress:
                job = client.jobs.submit_script(script, entry, progress=progress, **options)
        if follow_:
            typer.echo(f"job {job.id} submitted ({job.kind} {job.entry})", err=True)
            job = follow(client, job.id, log_to_stderr=json_)
    if json_:
        print_json(job)
    elif quiet:
        typer.echo(job.id)
    elif not follow_:
        waiting = f": {job.reason}" if job.reason and job.state == "queued" else ""
        typer.echo(f"job {job.id} submitted ({job.kind} {job.entry}), {job.state}{waiting}")
    if follow_ and job.state != "succeeded":
        raise typer.Exit(1)


def jobs_table(jobs: list[Job]) -> Table:
    """One line per job that fits 80 columns: entries whole, the reason cut short with …."""
    from datetime import datetime

    from rich.table import Table

    today = datetime.now().astimezone().date()
    table = Table(title=f"{len(jobs)} job(s)", box=None, pad_edge=False)
    for column in ("id", "kind", "entry", "state", "created", "took", "reason"):
        # Only the reason gives way (``show`` has it whole, and the attempts); entry
        # names are typed back, so they stay whole.
        table.add_column(*cells(column, one_line=True), no_wrap=column != "reason")
    for j in jobs:
        created = j.created_at.astimezone()
        row = (
            str(j.id),
            j.kind,
            j.entry,
            j.state,
            created.strftime("%H:%M" if created.date() == today else "%m-%d"),
            format_duration(j),
        )
        table.add_row(*cells(*row), *cells(j.reason or "", one_line=True))
    return table


@app.command("list")
def list_jobs(
    ctx: typer.Context,
    state: Annotated[State | None, typer.Option("--state", help="Only jobs in this state.")] = None,
    kind: Annotated[Kind | None, typer.Option("--kind", help="Only jobs of this kind.")] = None,
    limit: Annotated[int, typer.Option("--limit", min=1, help="At most this many.")] = 100,
    json_: JsonOpt = False,
) -> None:
    """List the project's jobs, newest first.

    Example: aimass jobs list --state running
    """
    with open_client(ctx) as client:
        jobs = client.jobs.list(state=state, kind=kind, limit=limit)
    if json_:
        print_json(jobs)
        return
    stdout_console().print(jobs_table(jobs))


@app.command("show")
def show(ctx: typer.Context, job_id: IdArg, json_: JsonOpt = False) -> None:
    """Show one job, its params and outputs, and its events as a timeline.

    Example: aimass jobs show 12
    """
    with open_client(ctx) as client:
        job = client.jobs.get(job_id)
        events = client.jobs.events(job_id)
    if json_:
        print_json({"job": dump(job), "events": dump(events)})
        return
    from rich.table import Table

    lines = [
        f"job {job.id}: {job.kind} {job.entry}, {job.state} (attempt {job.attempt}, "
        f"retries {job.retries_used}/{job.max_retries}), project {job.project}",
        f"params: {format_mapping(job.params) or '-'}",
        f"resources: {job.resources.cpu:g} CPU, {job.resources.gpu} GPU"
        + (f", {job.resources.memory_mb} MB" if job.resources.memory_mb else "")
        + f"; priority {job.priority}"
        + (f"; node {job.node}" if job.node else ""),
    ]
    if job.dataset:
        version = f"version {job.dataset_version}" if job.dataset_version else "latest version"
        lines.append(f"dataset: {job.dataset}, {version}")
    if job.source:
        lines.append(f"source: {job.source}")
    lines.append(f"created {format_time(job.created_at)}, ran {format_duration(job) or '-'}")
    if job.reason:
        lines.append(f"reason: {job.reason}")
    if job.outputs:
        lines.append(f"outputs: {json.dumps(job.outputs)}")
    console = stdout_console()
    for line in lines:
        console.print(line, highlight=False, markup=False)
    table = Table(title="timeline")
    for column in ("at", "+", "state", "attempt", "reason"):
        table.add_column(column, overflow="fold", no_wrap=column != "reason")
    for e in events:
        since = (e.at - events[0].at).total_seconds()
        at = e.at.strftime("%Y-%m-%d %H:%M:%S")
        table.add_row(*cells(at, f"{since:.1f} s", e.state, str(e.attempt), e.reason or ""))
    console.print(table)


@app.command("logs")
def logs(
    ctx: typer.Context,
    job_id: IdArg,
    follow_: FollowOpt = False,
    attempt: Annotated[
        int | None, typer.Option("--attempt", min=1, help="This attempt's log (default latest).")
    ] = None,
) -> None:
    """Print a job's log; with -f, stream it live until the job ends.

    Example: aimass jobs logs 12 -f
    """
    with open_client(ctx) as client:
        if follow_:
            follow(client, job_id)
            return
        text = client.jobs.logs(job_id, attempt=attempt)
    if text:
        typer.echo(text, nl=not text.endswith("\n"))


@app.command("metrics")
def metrics(ctx: typer.Context, job_id: IdArg, json_: JsonOpt = False) -> None:
    """Show the latest value of each metric a job logged, with its trend over steps.

    Example: aimass jobs metrics 12
    """
    with open_client(ctx) as client:
        points = client.jobs.metrics(job_id)
    if json_:
        print_json(points)
        return
    from rich.table import Table

    table = Table(title=f"job {job_id}: {len({p.name for p in points})} metric(s)")
    for column in ("metric", "latest", "step", "attempt", "trend"):
        table.add_column(column, justify="right" if column in ("latest", "step") else "left")
    for name, (latest, values) in metric_series(points).items():
        table.add_row(
            *cells(
                name, f"{latest.value:.4g}", str(latest.step), str(latest.attempt), trend(values)
            )
        )
    stdout_console().print(table)


@app.command("cancel")
def cancel(ctx: typer.Context, job_id: IdArg, json_: JsonOpt = False) -> None:
    """Cancel a queued or running job (a running one is stopped).

    Example: aimass jobs cancel 12
    """
    with open_client(ctx) as client:
        job = client.jobs.cancel(job_id)
    if json_:
        print_json(job)
    elif job.state == "cancelled":
        typer.echo(f"job {job.id} cancelled")
    else:  # a running job stops at its next check: it is not cancelled yet
        typer.echo(f"job {job.id} cancelling (it is {job.state} until it stops)")


@app.command("retry")
def retry(ctx: typer.Context, job_id: IdArg, json_: JsonOpt = False) -> None:
    """Queue a failed or cancelled job again.

    Example: aimass jobs retry 12 && aimass jobs logs 12 -f
    """
    with open_client(ctx) as client:
        job = client.jobs.retry(job_id)
    if json_:
        print_json(job)
    else:
        typer.echo(f"job {job.id} {job.state} again")


@app.command("wait")
def wait(
    ctx: typer.Context,
    job_id: IdArg,
    timeout: Annotated[float, typer.Option("--timeout", min=0, help="Seconds to wait.")] = 600.0,
    json_: JsonOpt = False,
) -> None:
    """Wait for a job to end; exit 0 if it succeeded, 1 otherwise (or on timeout).

    Example: aimass jobs wait 12 --timeout 3600 && aimass models list
    """
    with open_client(ctx) as client:
        job = client.jobs.wait(job_id, timeout=timeout, poll=0.2)
    if json_:
        print_json(job)
    else:
        typer.echo(outcome(job))
    if job.state != "succeeded":
        raise typer.Exit(1)


@app.command("entries")
def entries(ctx: typer.Context, json_: JsonOpt = False) -> None:
    """List what jobs can run by name, with their kinds, params and defaults.

    Example: aimass jobs entries
    """
    with open_client(ctx) as client:
        found = client.jobs.entries()
    if json_:
        typer.echo(json.dumps(found, indent=2))
        return
    from rich.padding import Padding
    from rich.text import Text

    console = stdout_console()
    for e in found:
        kinds = e.get("kinds")
        schema = e.get("params_schema")
        head = Text(str(e.get("name")), style="bold")
        head.append(f"  {', '.join(map(str, kinds)) if isinstance(kinds, list) else ''}")
        head.append(", needs a dataset" if e.get("needs_dataset") else "")
        console.print(head)
        console.print(Padding(Text(str(e.get("description") or "")), (0, 0, 0, 2)))
        for line in describe_params(schema if isinstance(schema, dict) else {}):
            console.print(Padding(Text(line), (0, 0, 0, 4)))
