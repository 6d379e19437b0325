"""``aimass monitoring``: logged predictions, their export, drift reports and events."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import typer

from aimass.cli._session import JsonOpt, format_time, open_client, print_json, stdout_console

app = typer.Typer(
    name="monitoring",
    help="Watch served models: logged predictions, drift and monitoring events.",
    no_args_is_help=True,
)

NameArg = Annotated[str, typer.Argument(help="The deployment's name.")]
StartOpt = Annotated[
    datetime | None, typer.Option("--start", help="From this time (ISO 8601, UTC if no zone).")
]
EndOpt = Annotated[datetime | None, typer.Option("--end", help="Up to this time (exclusive).")]
VersionOpt = Annotated[int | None, typer.Option("--version", min=1, help="Only this version.")]


@app.command("predictions")
def predictions(
    ctx: typer.Context,
    name: NameArg,
    start: StartOpt = None,
    end: EndOpt = None,
    version: VersionOpt = None,
    limit: Annotated[int, typer.Option("--limit", min=1, max=10_000)] = 20,
    sample: Annotated[
        int | None, typer.Option("--sample", min=1, max=10_000, help="A random sample.")
    ] = None,
    json_: JsonOpt = False,
) -> None:
    """Show logged predictions of a deployment.

    Example: aimass monitoring predictions iris --start 2026-12-04T10:00 --sample 50
    """
    with open_client(ctx) as client:
        page = client.monitoring.predictions(
            name, start=start, end=end, version=version, limit=limit, sample=sample
        )
    if json_:
        print_json(page)
        return
    from rich.table import Table

    table = Table("time", "request", "version", "ms", "inputs", "outputs")
    for r in page.records:
        table.add_row(
            format_time(r.time), f"{r.request_id}#{r.row}", str(r.version),
            f"{r.latency_ms:.1f}", str(r.inputs)[:60], str(r.outputs)[:40],
        )  # fmt: skip
    console = stdout_console()
    console.print(table)
    console.print(f"{len(page.records)} of {page.total} logged rows", highlight=False)


@app.command("export")
def export(
    ctx: typer.Context,
    name: NameArg,
    dataset: Annotated[str, typer.Argument(help="The dataset to add a version to.")],
    start: StartOpt = None,
    end: EndOpt = None,
    version: VersionOpt = None,
    json_: JsonOpt = False,
) -> None:
    """Save logged predictions (features and prediction) as a new dataset version.

    Example: aimass monitoring export iris iris-live --start 2026-12-04
    """
    with open_client(ctx) as client:
        made = client.monitoring.export(name, dataset, start=start, end=end, version=version)
    if json_:
        print_json(made)
        return
    typer.echo(f"dataset {made.dataset} version {made.version}: {made.num_rows} rows")


@app.command("drift")
def drift(
    ctx: typer.Context,
    name: NameArg,
    window: Annotated[float, typer.Option("--window", min=1, help="Seconds of traffic.")] = 300,
    reference: Annotated[
        str | None, typer.Option("--reference", help="Reference dataset as NAME:VERSION.")
    ] = None,
    numeric_test: Annotated[
        str | None,
        typer.Option("--numeric-test", help="Drift test for numbers (default ks; see plugins)."),
    ] = None,
    categorical_test: Annotated[
        str | None,
        typer.Option("--categorical-test", help="Drift test for categories (default chi2)."),
    ] = None,
    json_: JsonOpt = False,
) -> None:
    """Per-feature drift of a deployment's recent traffic against its reference.

    Example: aimass monitoring drift iris --window 600 --numeric-test example.mean_shift
    """
    dataset, number = None, None
    if reference is not None:
        dataset, _, text = reference.rpartition(":")
        if not dataset or not text.isdigit():
            raise typer.BadParameter("use NAME:VERSION", param_hint="--reference")
        number = int(text)
    with open_client(ctx) as client:
        report = client.monitoring.drift(
            name, window_s=window, reference_dataset=dataset, reference_version=number,
            numeric_test=numeric_test, categorical_test=categorical_test,
        )  # fmt: skip
    if json_:
        print_json(report)
        return
    from rich.table import Table

    table = Table("feature", "test", "p-value", "distance", "threshold", "psi", "drifted")
    for f in report.features:
        table.add_row(
            f.feature, f.test, f"{f.p_value:.2g}", f"{f.score:.3f}", f"{f.threshold:.3f}",
            f"{f.psi:.3f}", "yes" if f.drifted else "",
        )  # fmt: skip
    console = stdout_console()
    console.print(table)
    console.print(
        f"{report.rows} rows against {report.reference_rows} reference rows; "
        f"drifted: {', '.join(report.drifted) or 'none'}",
        highlight=False,
    )


@app.command("events")
def events(
    ctx: typer.Context,
    kind: Annotated[str | None, typer.Option("--kind", help="drift or alert.")] = None,
    limit: Annotated[int, typer.Option("--limit", min=1, max=1000)] = 50,
    json_: JsonOpt = False,
) -> None:
    """Monitoring events of the project, newest first.

    Example: aimass monitoring events --kind drift
    """
    with open_client(ctx) as client:
        found = client.monitoring.events(kind=kind, limit=limit)
    if json_:
        print_json(found)
        return
    from rich.table import Table

    table = Table("time", "kind", "subject", "severity", "message")
    for e in found:
        table.add_row(format_time(e.created_at), e.kind, e.subject, e.severity, e.message)
    stdout_console().print(table)


@app.command("alerts")
def alerts(ctx: typer.Context, json_: JsonOpt = False) -> None:
    """The alert rules and each rule and subject's latest state (firing or resolved).

    Example: aimass monitoring alerts
    """
    with open_client(ctx) as client:
        view = client.monitoring.alerts()
    if json_:
        print_json(view)
        return
    from rich.table import Table

    console = stdout_console()
    rules = Table("rule", "condition", "for", "severity", "subject")
    for r in view.rules:
        rules.add_row(
            r.name, f"{r.metric} {r.op} {r.threshold:g}", f"{r.for_s:g} s", r.severity,
            r.subject or "every subject",
        )  # fmt: skip
    console.print(rules)
    states = Table("rule", "subject", "status", "severity", "since", "summary")
    for a in view.alerts:
        since = a.starts_at if a.status == "firing" else (a.ends_at or "")
        states.add_row(a.rule, a.subject, a.status, a.severity, since, a.summary)
    console.print(states)


@app.command("nodes")
def nodes(ctx: typer.Context, json_: JsonOpt = False) -> None:
    """Every node's latest CPU, memory and disk sample, and whether it is down.

    Example: aimass monitoring nodes
    """
    with open_client(ctx) as client:
        found = client.monitoring.nodes()
    if json_:
        print_json(found)
        return
    from rich.table import Table

    table = Table("node", "state", "cpu %", "memory", "disk", "sampled")
    for n in found:
        s = n.latest
        table.add_row(
            n.node, "down" if n.down else "up", f"{s.cpu_percent:.0f}",
            f"{s.memory_used_bytes / 2**30:.1f}/{s.memory_total_bytes / 2**30:.1f} GiB",
            f"{s.disk_used_bytes / 2**30:.0f}/{s.disk_total_bytes / 2**30:.0f} GiB",
            format_time(s.at),
        )  # fmt: skip
    stdout_console().print(table)
