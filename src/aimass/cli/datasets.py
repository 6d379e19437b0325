"""``aimass datasets``: upload, list, show (with the column profile) and download."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, cast

import typer

from aimass.cli._session import (
    JsonOpt,
    format_size,
    format_time,
    open_client,
    print_json,
    stdout_console,
    transfer,
)

if TYPE_CHECKING:
    from aimass.entities.datasets import DatasetFormat, DatasetVersion

app = typer.Typer(
    name="datasets",
    help="Manage datasets: immutable CSV, Parquet or NPZ uploads with a statistical profile.",
    no_args_is_help=True,
)

_BARS = "▁▂▃▄▅▆▇█"


def sparkline(counts: list[int]) -> str:
    """A histogram as a row of unicode block characters, tallest bar = biggest count."""
    if not counts:
        return ""
    top = max(counts)
    if top <= 0:
        return _BARS[0] * len(counts)
    return "".join(_BARS[min(len(_BARS) - 1, round(c / top * (len(_BARS) - 1)))] for c in counts)


def _number(value: float | None) -> str:
    return "-" if value is None else f"{value:.4g}"


def _profile_table(version: DatasetVersion) -> None:
    from rich.table import Table

    table = Table(
        title=f"{version.dataset} v{version.version}: {version.profile.num_rows} rows, "
        f"{version.format}, {format_size(version.size)}"
    )
    for column in ("column", "dtype", "count", "missing", "min", "mean", "max", "histogram"):
        justify = "right" if column in ("count", "missing", "min", "mean", "max") else "left"
        table.add_column(column, justify=justify)  # type: ignore[arg-type]
    for c in version.profile.columns:
        table.add_row(
            c.name,
            c.dtype,
            str(c.count),
            str(c.missing),
            _number(c.min),
            _number(c.mean),
            _number(c.max),
            sparkline(c.histogram.counts) if c.histogram else "",
        )
    stdout_console().print(table)


@app.command("upload")
def upload(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="The dataset to add a version to (made if missing).")],
    file: Annotated[
        Path,
        typer.Argument(
            exists=True, dir_okay=False, readable=True, help="A CSV, Parquet or NPZ file."
        ),
    ],
    format: Annotated[
        str | None, typer.Option("--format", help="csv, parquet or npz; guessed when left out.")
    ] = None,
    description: Annotated[str, typer.Option(help="What this version holds.")] = "",
    json_: JsonOpt = False,
) -> None:
    """Upload a data file as a new dataset version; the server profiles it.

    Example: aimass datasets upload iris iris.csv --description "UCI iris"
    """
    if format not in (None, "csv", "parquet", "npz"):
        raise typer.BadParameter("use csv, parquet or npz", param_hint="--format")
    with open_client(ctx) as client, transfer(f"upload {file.name}", file.stat().st_size) as bar:
        version = client.datasets.upload(
            name,
            file,
            format=cast("DatasetFormat | None", format),
            description=description,
            progress=bar,
        )
    if json_:
        print_json(version)
    else:
        stdout_console().print(
            f"uploaded [bold]{version.dataset}[/] version [bold]{version.version}[/] "
            f"({version.num_rows} rows, {len(version.columns)} columns)",
            highlight=False,
        )


@app.command("list")
def list_datasets(ctx: typer.Context, json_: JsonOpt = False) -> None:
    """List the datasets in the project.

    Example: aimass datasets list --json
    """
    with open_client(ctx) as client:
        datasets = client.datasets.list()
    if json_:
        print_json(datasets)
        return
    from rich.table import Table

    table = Table(title=f"{len(datasets)} dataset(s)")
    for column in ("name", "latest", "description", "created"):
        table.add_column(column, overflow="fold")
    for d in datasets:
        table.add_row(
            d.name, str(d.latest_version or "-"), d.description, format_time(d.created_at)
        )
    stdout_console().print(table)


@app.command("show")
def show(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="The dataset's name.")],
    version: Annotated[
        int | None, typer.Option("--version", "-v", help="Which version; the latest by default.")
    ] = None,
    json_: JsonOpt = False,
) -> None:
    """Show a dataset version's profile: per column dtype, counts, range and histogram.

    Example: aimass datasets show iris --version 2
    """
    with open_client(ctx) as client:
        if version is None:
            latest = client.datasets.get(name).latest_version
            if latest is None:
                from aimass.errors import NotFound

                raise NotFound(f"dataset {name!r} has no versions")
            version = latest
        detail = client.datasets.get_version(name, version)
    if json_:
        print_json(detail)
    else:
        _profile_table(detail)


@app.command("download")
def download(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="The dataset's name.")],
    version: Annotated[int, typer.Argument(help="The version number.")],
    out: Annotated[
        str, typer.Option("--out", "-o", help="A file, or a folder (ending in /) to save it in.")
    ] = ".",
    json_: JsonOpt = False,
) -> None:
    """Download a dataset version's file, checking its SHA-256.

    Example: aimass datasets download iris 1 --out data/
    """
    with open_client(ctx) as client, transfer(f"download {name} v{version}") as bar:
        path = client.datasets.download(name, version, out, progress=bar)
    if json_:
        print_json({"path": str(path)})
    else:
        stdout_console().print(f"saved {path}", highlight=False, soft_wrap=True)


@app.command("builtin")
def builtin(
    ctx: typer.Context,
    materialize: Annotated[
        str | None,
        typer.Option(
            "--materialize",
            metavar="NAME",
            help="Register this built-in dataset in the project now (a job's first use does it).",
        ),
    ] = None,
    json_: JsonOpt = False,
) -> None:
    """List the built-in datasets (no download needed): task, size, and version if used.

    Example: aimass datasets builtin --materialize iris
    """
    with open_client(ctx) as client:
        if materialize is not None:
            made = client.zoo.materialize(materialize)
            if json_:
                print_json(made)
            else:
                stdout_console().print(f"{made.dataset} v{made.version}: {made.num_rows} rows")
            return
        datasets = client.zoo.datasets()
    if json_:
        print_json(datasets)
        return
    from rich.table import Table

    from aimass.cli.zoo import not_installed_lines

    table = Table(title=f"{len(datasets)} built-in dataset(s)")
    for column in ("name", "task", "size", "source", "in project"):
        table.add_column(column, overflow="fold", no_wrap=column == "name")
    for d in datasets:
        used = f"v{d.version}" if d.version is not None else "-"
        table.add_row(d.name, d.task, d.size, d.source, used, style=None if d.available else "dim")
    console = stdout_console()
    console.print(table)
    for line in not_installed_lines(datasets):
        console.print(line, highlight=False, soft_wrap=True, markup=False)
