"""``aimass pipelines``: apply DAGs of steps, start runs and watch each step live."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from aimass.cli._job_format import cells
from aimass.cli._session import (
    JsonOpt,
    YesOpt,
    confirm_and_delete,
    fail,
    format_time,
    open_client,
    print_json,
    stdout_console,
)

if TYPE_CHECKING:
    from rich.table import Table

    from aimass.client import Client
    from aimass.entities.pipelines import Pipeline, PipelineRun, Step, StepRun

app = typer.Typer(
    name="pipelines",
    help="Pipelines: DAGs of job and action steps with conditions (train, evaluate, promote).",
    no_args_is_help=True,
)

NameArg = Annotated[str, typer.Argument(help="The pipeline's name.")]
RunArg = Annotated[int, typer.Argument(help="The run's id.", min=1)]
_STYLE = {
    "succeeded": "green",
    "failed": "red",
    "running": "cyan",
    "cancelled": "yellow",
    "skipped": "dim",
}


def _took(step: StepRun | PipelineRun) -> str:
    if step.started_at is None:
        return ""
    end = step.finished_at or datetime.now(UTC)
    return f"{max(0.0, (end - step.started_at).total_seconds()):.1f} s"


def _does(step: Step) -> str:
    if step.job is not None:
        return f"{step.job.kind} {step.job.entry}"
    assert step.action is not None
    target = step.action.version or step.action.version_from
    return f"set_alias {step.action.model}@{step.action.alias} = {target}"


def steps_table(run: PipelineRun) -> Table:
    """Each step of a run: state, job, needs, how long, why."""
    from rich.table import Table
    from rich.text import Text

    table = Table(title=f"run {run.id} of {run.pipeline} (revision {run.revision}): {run.state}")
    for column in ("step", "state", "job", "needs", "took", "reason"):
        table.add_column(column, overflow="fold", no_wrap=column != "reason")
    for s in run.steps:
        table.add_row(
            Text(s.name),
            Text(s.state, style=_STYLE.get(s.state, "")),
            Text(str(s.job_id) if s.job_id else ""),
            Text(", ".join(s.needs)),
            Text(_took(s)),
            Text(s.reason or ""),
        )
    return table


def _outcome(run: PipelineRun) -> str:
    line = f"pipeline run {run.id} {run.state}"
    if run.state == "succeeded":
        line += f" in {_took(run)}"
    return line + (f": {run.reason}" if run.reason else "")


def _watch(client: Client, run: PipelineRun, timeout: float) -> PipelineRun:
    """Follow a run until it ends: a live table on a terminal, one line a change otherwise."""
    console = stdout_console()
    final = run
    try:
        if console.is_terminal:
            from rich.live import Live

            with Live(steps_table(run), console=console, refresh_per_second=4) as live:
                for final in client.pipelines.watch_run(run.id, timeout=timeout):
                    live.update(steps_table(final))
        else:
            seen: dict[str, str] = {}
            for final in client.pipelines.watch_run(run.id, timeout=timeout):
                for s in final.steps:
                    if seen.get(s.name) != s.state:
                        seen[s.name] = s.state
                        job = f" (job {s.job_id})" if s.job_id else ""
                        why = f": {s.reason}" if s.reason else ""
                        console.print(*cells(f"{s.name}: {s.state}{job}{why}"))
    except KeyboardInterrupt:
        typer.echo(f"stopped watching run {run.id}; it goes on", err=True)
        raise typer.Exit(130) from None
    typer.echo(_outcome(final), err=True)
    return final


@app.command("apply")
def apply(
    ctx: typer.Context,
    file: Annotated[Path, typer.Argument(help="The pipeline as JSON: {name, steps: [...]}.")],
    json_: JsonOpt = False,
) -> None:
    """Create a pipeline from a JSON file, or replace the one of that name.

    Example: aimass pipelines apply promote-if-better.json
    """
    try:
        spec = json.loads(file.read_text())
    except (OSError, ValueError) as exc:
        fail(f"cannot read {file}: {exc}")
    if not isinstance(spec, dict):
        fail(f"{file}: expected a JSON object with 'name' and 'steps'")
    with open_client(ctx) as client:
        pipeline = client.pipelines.apply(spec)
    if json_:
        print_json(pipeline)
        return
    verb = "created" if pipeline.revision == 1 else f"replaced (revision {pipeline.revision})"
    order = " -> ".join(s.name for s in pipeline.steps)
    stdout_console().print(*cells(f"{verb} pipeline {pipeline.name}: {order}"))


@app.command("list")
def list_pipelines(ctx: typer.Context, json_: JsonOpt = False) -> None:
    """List the project's pipelines.

    Example: aimass pipelines list
    """
    with open_client(ctx) as client:
        pipelines = client.pipelines.list()
    if json_:
        print_json(pipelines)
        return
    from rich.table import Table

    table = Table(title=f"{len(pipelines)} pipeline(s)")
    for column in ("name", "steps", "revision", "updated", "description"):
        table.add_column(column, overflow="fold", no_wrap=column == "name")
    for p in pipelines:
        steps = " -> ".join(s.name for s in p.steps)
        table.add_row(
            *cells(p.name, steps, str(p.revision), format_time(p.updated_at), p.description)
        )
    stdout_console().print(table)


def _show_pipeline(pipeline: Pipeline) -> None:
    from rich.table import Table

    table = Table(title=f"{pipeline.name} (revision {pipeline.revision})")
    for column in ("step", "does", "needs", "when"):
        table.add_column(column, overflow="fold")
    for s in pipeline.steps:
        when = ""
        if s.when is not None:
            when = json.dumps(s.when.model_dump(mode="json", exclude_none=True))
        table.add_row(*cells(s.name, _does(s), ", ".join(s.needs), when))
    stdout_console().print(table)


@app.command("show")
def show(ctx: typer.Context, name: NameArg, json_: JsonOpt = False) -> None:
    """Show a pipeline's steps in running order, with what each does and when.

    Example: aimass pipelines show promote-if-better
    """
    with open_client(ctx) as client:
        pipeline = client.pipelines.get(name)
    if json_:
        print_json(pipeline)
    else:
        _show_pipeline(pipeline)


@app.command("delete")
def delete(
    ctx: typer.Context,
    name: NameArg,
    yes: YesOpt = False,
) -> None:
    """Delete a pipeline and its finished runs.

    Example: aimass pipelines delete promote-if-better --yes
    """
    confirm_and_delete(
        ctx, f"Delete pipeline {name!r} and its runs?", f"deleted pipeline {name}",
        lambda client: client.pipelines.delete(name), yes=yes,
    )  # fmt: skip


@app.command("run")
def run(
    ctx: typer.Context,
    name: NameArg,
    follow_: Annotated[
        bool, typer.Option("--follow", "-f", help="Watch the steps live until the run ends.")
    ] = False,
    timeout: Annotated[
        float, typer.Option("--timeout", min=0, help="Seconds to watch at most (with -f).")
    ] = 3600.0,
    json_: JsonOpt = False,
) -> None:
    """Start a run; with -f, watch each step and exit 0 only if the run succeeded.

    Example: aimass pipelines run promote-if-better -f
    """
    with open_client(ctx) as client:
        started = client.pipelines.run(name)
        final = _watch(client, started, timeout) if follow_ else started
    if json_:
        print_json(final)
    elif not follow_:
        stdout_console().print(*cells(f"started pipeline run {started.id} of {name}"))
    if follow_ and final.state != "succeeded":
        raise typer.Exit(1)


@app.command("runs")
def runs(
    ctx: typer.Context,
    name: NameArg,
    limit: Annotated[int, typer.Option("--limit", min=1, max=500, help="Runs to show.")] = 20,
    json_: JsonOpt = False,
) -> None:
    """List a pipeline's latest runs.

    Example: aimass pipelines runs promote-if-better
    """
    with open_client(ctx) as client:
        found = client.pipelines.runs(name, limit)
    if json_:
        print_json(found)
        return
    from rich.table import Table

    table = Table(title=f"{len(found)} run(s) of {name}")
    for column in ("id", "state", "steps", "trigger", "started", "took", "reason"):
        table.add_column(column, overflow="fold", no_wrap=column in ("id", "state"))
    for r in found:
        done = sum(s.state in ("succeeded", "skipped") for s in r.steps)
        started = format_time(r.started_at) if r.started_at else ""
        table.add_row(
            *cells(
                str(r.id),
                r.state,
                f"{done}/{len(r.steps)}",
                r.trigger,
                started,
                _took(r),
                r.reason or "",
            )
        )
    stdout_console().print(table)


@app.command("show-run")
def show_run(ctx: typer.Context, run_id: RunArg, json_: JsonOpt = False) -> None:
    """Show a run: each step's state, job, how long it took and why.

    Example: aimass pipelines show-run 7
    """
    with open_client(ctx) as client:
        found = client.pipelines.get_run(run_id)
    if json_:
        print_json(found)
        return
    stdout_console().print(steps_table(found))
    if found.reason:
        stdout_console().print(*cells(found.reason))


@app.command("cancel-run")
def cancel_run(ctx: typer.Context, run_id: RunArg, json_: JsonOpt = False) -> None:
    """Cancel a run and the jobs of its running steps.

    Example: aimass pipelines cancel-run 7
    """
    with open_client(ctx) as client:
        found = client.pipelines.cancel_run(run_id)
    if json_:
        print_json(found)
    else:
        stdout_console().print(*cells(f"pipeline run {found.id} {found.state}"))
