"""``aimass deploy`` and ``aimass deployments``: serve model versions and manage what is served."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from aimass.cli._job_format import cells
from aimass.cli._session import (
    JsonOpt,
    YesOpt,
    confirm_and_delete,
    format_time,
    open_client,
    print_json,
    stderr_console,
    stdout_console,
)

if TYPE_CHECKING:
    from rich.table import Table

    from aimass.client import Client
    from aimass.entities.deployments import Deployment, TrafficRoute

app = typer.Typer(
    name="deployments",
    help="Manage deployments: what is served, with which versions, weights and batching.",
    no_args_is_help=True,
)

NameArg = Annotated[str, typer.Argument(help="The deployment's name.")]
VersionOpt = Annotated[int | None, typer.Option("--version", min=1, help="Serve this version.")]
AliasOpt = Annotated[
    str | None,
    typer.Option("--alias", help="Serve the version this alias points at, following it."),
]
TrafficOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--traffic",
        metavar="VERSION_OR_ALIAS=WEIGHT",
        help="A weighted route (1=90, canary=10); repeat to split traffic. In an ensemble "
        "(--combiner) each is a member, and MODEL:VERSION=WEIGHT names another model.",
    ),
]
WaitOpt = Annotated[
    bool, typer.Option("--wait/--no-wait", help="Wait until every replica serves it.")
]
TimeoutOpt = Annotated[
    float, typer.Option("--timeout", min=0, help="Seconds to wait for it to be ready.")
]


def parse_traffic(values: list[str] | None) -> list[dict[str, object]] | None:
    """``["1=90", "canary=10"]`` into routes: digits name a version, anything else an alias."""
    if not values:
        return None
    routes: list[dict[str, object]] = []
    for item in values:
        target, sep, weight = item.rpartition("=")
        target = target.strip()
        try:
            amount = float(weight)
        except ValueError:
            amount = -1.0
        if not sep or not target or amount <= 0:
            raise typer.BadParameter(
                f"expected VERSION_OR_ALIAS=WEIGHT with a positive weight, got {item!r}",
                param_hint="--traffic",
            )
        model, _, target = target.rpartition(":")  # MODEL:VERSION=WEIGHT: an ensemble member
        key = "version" if target.isdigit() else "alias"
        route: dict[str, object] = {key: int(target) if target.isdigit() else target}
        route["weight"] = amount
        if model:
            route["model"] = model
        routes.append(route)
    return routes


CombinerOpt = Annotated[
    str | None,
    typer.Option(
        "--combiner",
        help="Serve the --traffic routes as ONE ensemble model fused by this strategy: mean, "
        "weighted_mean, hard_vote, soft_vote, stacking (needs --meta) or a plugin's.",
    ),
]
RunnerOpt = Annotated[
    str,
    typer.Option(
        "--runner",
        help="Where the model runs: process (one runner process per node that every worker "
        "feeds), in_process (in each worker) or auto (process for formats that run code).",
    ),
]
AutoscalingOpt = Annotated[
    str | None,
    typer.Option(
        "--autoscaling",
        help="Autoscale the runner processes (with --runner process), as JSON with Ray Serve's "
        'names: \'{"min_replicas": 1, "max_replicas": 3, "target_ongoing_requests": 2}\'.',
    ),
]


def autoscaling_spec(text: str | None) -> dict[str, object] | None:
    """``--autoscaling`` as a JSON object."""
    if text is None:
        return None
    import json

    try:
        value = json.loads(text)
    except ValueError:
        value = None
    if not isinstance(value, dict):
        raise typer.BadParameter("expected a JSON object", param_hint="--autoscaling")
    return value


MetaOpt = Annotated[
    Path | None,
    typer.Option(
        "--meta",
        exists=True,
        dir_okay=False,
        help="A stacking meta-model as JSON ({coef, intercept}), fitted out-of-fold.",
    ),
]


def combiner_spec(combiner: str | None, meta: Path | None) -> dict[str, object] | None:
    """The ``combiner`` of a deployment from ``--combiner`` and ``--meta``."""
    if combiner is None:
        if meta is not None:
            raise typer.BadParameter("--meta goes with --combiner stacking", param_hint="--meta")
        return None
    spec: dict[str, object] = {"strategy": combiner}
    if meta is not None:
        try:
            spec["meta"] = json.loads(meta.read_text())
        except ValueError as exc:
            raise typer.BadParameter(f"{meta} is not JSON: {exc}", param_hint="--meta") from None
    return spec


def _targets(version: int | None, alias: str | None, traffic: list[str] | None) -> int:
    return sum(x is not None for x in (version, alias, traffic or None))


def format_routes(routes: list[TrafficRoute]) -> str:
    """``v1 90%, canary 10%`` for a table cell (one route: just ``v1``)."""
    total = sum(r.weight for r in routes) or 1.0
    cells = []
    for r in routes:
        target = f"v{r.version}" if r.version is not None else str(r.alias)
        cells.append(target if len(routes) == 1 else f"{target} {100 * r.weight / total:.3g}%")
    return ", ".join(cells)


@contextlib.contextmanager
def _spinner(message: str) -> Iterator[None]:
    console = stderr_console()
    if not console.is_terminal:
        yield
        return
    with console.status(message):
        yield


def wait_for(client: Client, name: str, timeout: float) -> Deployment:
    """Wait for ``name`` under a spinner; a failure raises (one line, exit 1 in open_client)."""
    with _spinner(f"waiting for deployment {name} to be ready"):
        return client.deployments.wait_ready(name, timeout=timeout, interval=0.2)


_MAX_QUEUE_HELP = (
    "Requests that may wait for the model in each server process; past it a request "
    "gets 429 with Retry-After (default 128)."
)


def _options(
    version: int | None,
    alias: str | None,
    traffic: list[dict[str, object]] | None,
    replicas: int | None,
    max_batch_size: int | None,
    max_delay_ms: float | None,
    cpu: float | None,
    gpu: int | None,
    memory_mb: int | None,
    max_queue: int | None = None,
) -> dict[str, Any]:
    """The settings ``deploy`` and ``update`` share, as keyword arguments for the SDK."""
    given = {} if max_queue is None else {"max_queue": max_queue}
    return {
        **given,
        "version": version,
        "alias": alias,
        "traffic": traffic,
        "replicas": replicas,
        "max_batch_size": max_batch_size,
        "max_delay_ms": max_delay_ms,
        "cpu": cpu,
        "gpu": gpu,
        "memory_mb": memory_mb,
    }


def _apply(
    ctx: typer.Context,
    action: Callable[[Client], Deployment],
    *,
    wait: bool,
    timeout: float,
    json_: bool,
    verb: str,
) -> None:
    """Create or update, wait for readiness if asked, and report."""
    with open_client(ctx) as client:
        deployment = action(client)
        if wait:
            deployment = wait_for(client, deployment.name, timeout)
    if json_:
        print_json(deployment)
    else:
        _summary(deployment, verb)


def _summary(deployment: Deployment, verb: str) -> None:
    console = stdout_console()
    console.print(
        f"{verb} [bold]{deployment.name}[/]: model {deployment.model} "
        f"{format_routes(deployment.routes)}, {deployment.replicas} replica(s), "
        f"revision {deployment.revision}, {deployment.state}",
        highlight=False,
    )
    if deployment.state == "ready":
        console.print(
            f"predict: aimass predict {deployment.name} --input rows.json",
            highlight=False,
            markup=False,
        )


def deploy(
    ctx: typer.Context,
    model: Annotated[str, typer.Argument(help="The model to serve.")],
    name: Annotated[
        str | None, typer.Option("--name", help="The deployment's name; defaults to the model's.")
    ] = None,
    version: VersionOpt = None,
    alias: AliasOpt = None,
    traffic: TrafficOpt = None,
    replicas: Annotated[int, typer.Option("--replicas", min=1, help="Replicas to run.")] = 1,
    max_batch_size: Annotated[
        int, typer.Option("--max-batch-size", min=1, help="Rows at most in one batch.")
    ] = 64,
    max_delay_ms: Annotated[
        float,
        typer.Option("--max-delay-ms", min=0, help="Milliseconds a batch waits to fill."),
    ] = 2.0,
    max_queue: Annotated[
        int | None, typer.Option("--max-queue", min=1, help=_MAX_QUEUE_HELP)
    ] = None,
    cpu: Annotated[float, typer.Option("--cpu", help="CPUs per replica.")] = 1.0,
    gpu: Annotated[int, typer.Option("--gpu", min=0, help="GPUs per replica.")] = 0,
    memory_mb: Annotated[
        int | None, typer.Option("--memory-mb", min=1, help="Memory per replica, in MB.")
    ] = None,
    wait: WaitOpt = True,
    timeout: TimeoutOpt = 60.0,
    json_: JsonOpt = False,
    combiner: CombinerOpt = None,
    meta: MetaOpt = None,
    runner: RunnerOpt = "auto",
    autoscaling: AutoscalingOpt = None,
) -> None:
    """Serve a model version, an alias it follows, several versions by weight, or an ensemble.

    Give one of --version, --alias or --traffic.

    Example: aimass deploy iris --alias production --replicas 2

    Example: aimass deploy iris --name iris-ab --traffic 1=90 --traffic canary=10

    Example: aimass deploy iris --name iris-vote --combiner soft_vote --traffic 1=1
    --traffic iris-tree:2=1

    Example: aimass deploy iris --runner process --autoscaling '{"max_replicas": 3}'
    """
    routes = parse_traffic(traffic)
    if _targets(version, alias, traffic) != 1:
        raise typer.BadParameter("give exactly one of --version, --alias or --traffic")
    options = _options(
        version, alias, routes, replicas, max_batch_size, max_delay_ms, cpu, gpu, memory_mb,
        max_queue,
    )  # fmt: skip
    fused = combiner_spec(combiner, meta)
    scaling = autoscaling_spec(autoscaling)
    _apply(
        ctx,
        lambda client: client.deployments.create(
            model, name=name, combiner=fused, runner=runner, autoscaling=scaling, **options
        ),
        wait=wait,
        timeout=timeout,
        json_=json_,
        verb="deployed",
    )


def deployments_table(deployments: list[Deployment]) -> Table:
    """One line per deployment that fits 80 columns (``show`` has revision and times)."""
    from rich.table import Table

    table = Table(title=f"{len(deployments)} deployment(s)", box=None, pad_edge=False)
    # Names stay whole (they are typed back); only the routes wrap, at their commas.
    for column in ("name", "model", "routes", "replicas", "batching", "state"):
        table.add_column(column, overflow="fold", no_wrap=column != "routes")
    for d in deployments:
        table.add_row(
            *cells(
                d.name,
                d.model,
                format_routes(d.routes),
                str(d.replicas),
                f"{d.batching.max_batch_size}/{d.batching.max_delay_ms:g}ms",
                d.state,
            )
        )
    return table


@app.command("list")
def list_deployments(ctx: typer.Context, json_: JsonOpt = False) -> None:
    """List the project's deployments with their routes and state.

    Example: aimass deployments list
    """
    with open_client(ctx) as client:
        deployments = client.deployments.list()
    if json_:
        print_json(deployments)
        return
    stdout_console().print(deployments_table(deployments))


@app.command("show")
def show(ctx: typer.Context, name: NameArg, json_: JsonOpt = False) -> None:
    """Show one deployment: its routes, batching, resources and each replica's state.

    Example: aimass deployments show iris
    """
    with open_client(ctx) as client:
        d = client.deployments.get(name)
    if json_:
        print_json(d)
        return
    from rich.table import Table

    console = stdout_console()
    console.print(
        f"[bold]{d.name}[/]  model {d.model}, project {d.project}, revision {d.revision}, "
        f"state [bold]{d.state}[/]",
        highlight=False,
    )
    memory = f", {d.resources.memory_mb} MB" if d.resources.memory_mb else ""
    console.print(
        f"{d.replicas} replica(s) of {d.resources.cpu:g} CPU, {d.resources.gpu} GPU{memory}; "
        f"batches of {d.batching.max_batch_size} rows or {d.batching.max_delay_ms:g} ms",
        highlight=False,
    )
    if d.autoscaling is not None:
        a = d.autoscaling
        console.print(
            f"autoscaling {a.min_replicas}..{a.max_replicas} replicas at "
            f"{a.target_ongoing_requests:g} ongoing requests each (up after "
            f"{a.upscale_delay_s:g} s, down after {a.downscale_delay_s:g} s)",
            highlight=False,
        )
    total = sum(r.weight for r in d.routes) or 1.0
    routes = Table(title="routes")
    for column in ("target", "weight", "share"):
        routes.add_column(column)
    for r in d.routes:
        target = f"version {r.version}" if r.version is not None else f"alias {r.alias}"
        routes.add_row(target, f"{r.weight:g}", f"{100 * r.weight / total:.3g}%")
    console.print(routes)
    replicas = Table(title=f"{len(d.replica_status)} replica(s) reporting")
    for column in ("replica", "state", "versions", "runners", "device", "reason", "updated"):
        replicas.add_column(column, overflow="fold", no_wrap=column not in ("device", "reason"))
    for s in d.replica_status:
        replicas.add_row(
            s.replica,
            s.state,
            ", ".join(str(v) for v in s.versions),
            "" if s.replicas is None else f"{s.replicas} (wants {s.desired_replicas})",
            s.device or "",
            s.reason or "",
            format_time(s.updated_at),
        )
    console.print(replicas)


@app.command("update")
def update(
    ctx: typer.Context,
    name: NameArg,
    version: VersionOpt = None,
    alias: AliasOpt = None,
    traffic: TrafficOpt = None,
    replicas: Annotated[
        int | None, typer.Option("--replicas", min=1, help="Replicas to run.")
    ] = None,
    max_batch_size: Annotated[
        int | None, typer.Option("--max-batch-size", min=1, help="Rows at most in one batch.")
    ] = None,
    max_delay_ms: Annotated[
        float | None,
        typer.Option("--max-delay-ms", min=0, help="Milliseconds a batch waits to fill."),
    ] = None,
    max_queue: Annotated[
        int | None, typer.Option("--max-queue", min=1, help=_MAX_QUEUE_HELP)
    ] = None,
    cpu: Annotated[float | None, typer.Option("--cpu", help="CPUs per replica.")] = None,
    gpu: Annotated[int | None, typer.Option("--gpu", min=0, help="GPUs per replica.")] = None,
    memory_mb: Annotated[
        int | None, typer.Option("--memory-mb", min=1, help="Memory per replica, in MB.")
    ] = None,
    wait: WaitOpt = True,
    timeout: TimeoutOpt = 60.0,
    json_: JsonOpt = False,
    autoscaling: Annotated[
        str | None,
        typer.Option(
            "--autoscaling",
            help="New autoscaling settings as JSON (they replace the old whole and apply "
            "without a reload), or 'off'.",
        ),
    ] = None,
) -> None:
    """Change what a deployment serves or how, without dropping requests in flight.

    Example: aimass deployments update iris --version 3

    Example: aimass deployments update iris --traffic 2=50 --traffic 3=50 --max-batch-size 32

    Example: aimass deployments update iris --autoscaling '{"max_replicas": 4}'
    """
    routes = parse_traffic(traffic)
    if _targets(version, alias, traffic) > 1:
        raise typer.BadParameter("give at most one of --version, --alias or --traffic")
    others = (replicas, max_batch_size, max_delay_ms, max_queue, cpu, gpu, memory_mb, autoscaling)
    if _targets(version, alias, traffic) == 0 and all(x is None for x in others):
        raise typer.BadParameter("nothing to change: give at least one option")
    options = _options(
        version, alias, routes, replicas, max_batch_size, max_delay_ms, cpu, gpu, memory_mb,
        max_queue,
    )  # fmt: skip
    if autoscaling is not None:
        options["autoscaling"] = False if autoscaling == "off" else autoscaling_spec(autoscaling)
    _apply(
        ctx,
        lambda client: client.deployments.update(name, **options),
        wait=wait,
        timeout=timeout,
        json_=json_,
        verb="updated",
    )


@app.command("delete")
def delete(
    ctx: typer.Context,
    name: NameArg,
    yes: YesOpt = False,
    json_: JsonOpt = False,
) -> None:
    """Stop serving a deployment; requests in flight finish first.

    Example: aimass deployments delete iris --yes
    """
    confirm_and_delete(
        ctx, f"Delete deployment {name!r}?", f"deleted deployment {name}",
        lambda client: client.deployments.delete(name),
        yes=yes, as_json={"deleted": name} if json_ else None,
    )  # fmt: skip
