"""``aimass schedules``: cron rules that start a job or a pipeline run."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Literal

import typer

from aimass.cli._job_format import (
    DatasetOpt,
    DatasetVersionOpt,
    ParamOpt,
    ParamsJsonOpt,
    cells,
    parse_params,
)
from aimass.cli._session import (
    JsonOpt,
    YesOpt,
    confirm_and_delete,
    format_time,
    open_client,
    print_json,
    stdout_console,
)

if TYPE_CHECKING:
    from aimass.entities.schedules import Schedule

app = typer.Typer(
    name="schedules",
    help="Cron schedules that start a job (a catalogue entry) or a pipeline run.",
    no_args_is_help=True,
)

Kind = Literal["train", "evaluate", "batch_predict", "tune"]
NameArg = Annotated[str, typer.Argument(help="The schedule's name.")]


def _what(s: Schedule) -> str:
    if s.job is not None:
        dataset = f" on {s.job.dataset}" if s.job.dataset else ""
        return f"{s.job.kind} {s.job.entry}{dataset}"
    return f"pipeline {s.pipeline}"


def _when(s: Schedule) -> str:
    return format_time(s.next_run_at) + " UTC" if s.next_run_at else "disabled"


def _summary(verb: str, s: Schedule) -> None:
    stdout_console().print(
        *cells(f"{verb} schedule {s.name}: {s.cron} ({s.timezone}) starts {_what(s)}; "
               f"next {_when(s)}"),
    )  # fmt: skip


@app.command("create")
def create(
    ctx: typer.Context,
    name: NameArg,
    cron: Annotated[
        str, typer.Option("--cron", help="5 fields: minute hour day month weekday ('*/5 * * * *').")
    ],
    entry: Annotated[
        str | None, typer.Option("--entry", help="The catalogue entry each firing runs.")
    ] = None,
    kind: Annotated[Kind, typer.Option("--kind", help="What the job does.")] = "train",
    param: ParamOpt = None,
    params_json: ParamsJsonOpt = None,
    dataset: DatasetOpt = None,
    dataset_version: DatasetVersionOpt = None,
    pipeline: Annotated[
        str | None, typer.Option("--pipeline", help="Start a run of this pipeline instead.")
    ] = None,
    timezone: Annotated[
        str, typer.Option("--timezone", help="Time zone the cron reads in (IANA name).")
    ] = "UTC",
    disabled: Annotated[bool, typer.Option("--disabled", help="Create it disabled.")] = False,
    json_: JsonOpt = False,
) -> None:
    """Create a schedule that starts a job of --entry, or a run of --pipeline.

    Example: aimass schedules create nightly --cron "0 3 * * *" --entry noop -p sleep_s=1

    Example: aimass schedules create retrain --cron "*/30 * * * *" --pipeline promote-if-better
    """
    if (entry is None) == (pipeline is None):
        raise typer.BadParameter("give exactly one of --entry or --pipeline")
    params = parse_params(param, params_json)
    with open_client(ctx) as client:
        schedule = client.schedules.create(
            name,
            cron,
            entry=entry,
            kind=kind,
            params=params,  # type: ignore[arg-type]
            dataset=dataset,
            dataset_version=dataset_version,
            pipeline=pipeline,
            timezone=timezone,
            enabled=not disabled,
        )
    if json_:
        print_json(schedule)
    else:
        _summary("created", schedule)


@app.command("list")
def list_schedules(ctx: typer.Context, json_: JsonOpt = False) -> None:
    """List the project's schedules and when each fires next.

    Example: aimass schedules list
    """
    with open_client(ctx) as client:
        schedules = client.schedules.list()
    if json_:
        print_json(schedules)
        return
    from rich.table import Table

    table = Table(title=f"{len(schedules)} schedule(s)")
    for column in ("name", "cron", "tz", "starts", "next", "last", "last started", "error"):
        table.add_column(column, overflow="fold", no_wrap=column in ("name", "cron", "next"))
    for s in schedules:
        last = f"job {s.last_job_id}" if s.job is not None and s.last_job_id else ""
        if s.pipeline is not None and s.last_pipeline_run_id:
            last = f"run {s.last_pipeline_run_id}"
        table.add_row(
            *cells(
                s.name,
                s.cron,
                s.timezone,
                _what(s),
                _when(s),
                format_time(s.last_run_at) if s.last_run_at else "",
                last,
                s.last_error or "",
            )
        )
    stdout_console().print(table)


@app.command("show")
def show(ctx: typer.Context, name: NameArg, json_: JsonOpt = False) -> None:
    """Show one schedule: its rule, template, next and last firing.

    Example: aimass schedules show nightly
    """
    with open_client(ctx) as client:
        s = client.schedules.get(name)
    if json_:
        print_json(s)
        return
    console = stdout_console()
    console.print(*cells(f"{s.name}: {s.cron} ({s.timezone}), starts {_what(s)}"))
    console.print(*cells(f"next: {_when(s)}"))
    if s.last_run_at is not None:
        started = (
            f"job {s.last_job_id}" if s.last_job_id else f"pipeline run {s.last_pipeline_run_id}"
        )
        console.print(*cells(f"last: {format_time(s.last_run_at)} UTC, started {started}"))
    if s.last_error:
        console.print(*cells(f"last error: {s.last_error}"))
    if s.job is not None and s.job.params:
        import json

        console.print(*cells("params: " + json.dumps(s.job.params)))


def _toggle(ctx: typer.Context, name: str, enabled: bool, json_: bool) -> None:
    with open_client(ctx) as client:
        schedule = client.schedules.update(name, enabled=enabled)
    if json_:
        print_json(schedule)
    else:
        _summary("enabled" if enabled else "disabled", schedule)


@app.command("enable")
def enable(ctx: typer.Context, name: NameArg, json_: JsonOpt = False) -> None:
    """Fire again from the next matching time (missed times are not made up).

    Example: aimass schedules enable nightly
    """
    _toggle(ctx, name, True, json_)


@app.command("disable")
def disable(ctx: typer.Context, name: NameArg, json_: JsonOpt = False) -> None:
    """Stop firing until enabled again.

    Example: aimass schedules disable nightly
    """
    _toggle(ctx, name, False, json_)


@app.command("update")
def update(
    ctx: typer.Context,
    name: NameArg,
    cron: Annotated[str | None, typer.Option("--cron", help="A new 5-field rule.")] = None,
    timezone: Annotated[str | None, typer.Option("--timezone", help="A new time zone.")] = None,
    json_: JsonOpt = False,
) -> None:
    """Change when a schedule fires.

    Example: aimass schedules update nightly --cron "30 2 * * *" --timezone Europe/Paris
    """
    if cron is None and timezone is None:
        raise typer.BadParameter("nothing to change: give --cron or --timezone")
    with open_client(ctx) as client:
        schedule = client.schedules.update(name, cron=cron, timezone=timezone)
    if json_:
        print_json(schedule)
    else:
        _summary("updated", schedule)


@app.command("delete")
def delete(
    ctx: typer.Context,
    name: NameArg,
    yes: YesOpt = False,
    json_: JsonOpt = False,
) -> None:
    """Delete a schedule; what it already started runs on.

    Example: aimass schedules delete nightly --yes
    """
    confirm_and_delete(
        ctx, f"Delete schedule {name!r}?", f"deleted schedule {name}",
        lambda client: client.schedules.delete(name),
        yes=yes, as_json={"deleted": name} if json_ else None,
    )  # fmt: skip
