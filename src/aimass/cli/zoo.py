"""``aimass zoo``: the model library's entries: list them, show one, train one."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import TYPE_CHECKING, Annotated, Protocol

import typer

from aimass.cli._session import JsonOpt, open_client, print_json, stdout_console

if TYPE_CHECKING:
    from rich.table import Table

    from aimass.client.zoo import ZooEntry

app = typer.Typer(
    name="zoo",
    help="The model library: ready models to train on built-in datasets, deploy and query.",
    no_args_is_help=True,
)


@app.command("list")
def list_entries(ctx: typer.Context, json_: JsonOpt = False) -> None:
    """List the entries: name, family, task, default dataset and export format.

    Example: aimass zoo list
    """
    with open_client(ctx) as client:
        entries = client.zoo.list()
    if json_:
        print_json(entries)
        return
    console = stdout_console()
    console.print(zoo_table(entries))
    for line in not_installed_lines(entries):
        console.print(line, highlight=False, soft_wrap=True, markup=False)


class _Optional(Protocol):
    name: str
    available: bool
    extra: str | None
    install: str | None


def not_installed_lines(items: Sequence[_Optional]) -> list[str]:
    """One line per missing extra: what it would make available, and the command to install it.

    The table shows those rows dimmed; this says why, and how to have them.
    """
    by_command: dict[str, list[str]] = {}
    for item in items:
        if not item.available and item.install:
            by_command.setdefault(item.install, []).append(item.name)
    return [
        f"not installed on the server (dimmed): {', '.join(names)}; to have them: {command}"
        for command, names in by_command.items()
    ]


def zoo_table(entries: list[ZooEntry]) -> Table:
    """One line per entry that fits 80 columns; no cell is cut or broken inside a word."""
    from rich.table import Table

    table = Table(title=f"{len(entries)} model(s) in the library", box=None, pad_edge=False)
    # The family is the name's prefix (classical., vision., ...), so it needs no column.
    for column in ("name", "task", "default dataset", "exports"):
        # Names and tasks stay whole; the export list wraps at its commas.
        table.add_column(column, overflow="fold", no_wrap=column != "exports")
    for e in entries:
        table.add_row(
            e.name,
            e.task or "-",
            e.default_dataset or "-",
            ", ".join(e.exports),
            style=None if e.available else "dim",
        )
    return table


def _show(entry: ZooEntry) -> None:
    from rich.table import Table

    console = stdout_console()
    console.print(f"[bold]{entry.name}[/bold]: {entry.description}", soft_wrap=True)
    console.print(
        f"task {entry.task}, family {entry.family}, default dataset "
        f"{entry.default_dataset}, exports {', '.join(entry.exports)}",
        highlight=False,
        soft_wrap=True,
    )
    table = Table(title="params")
    for column in ("name", "type", "default", "constraints", "description"):
        table.add_column(column, overflow="fold")
    for p in entry.params:
        default = "(required)" if p.required else json.dumps(p.default)
        table.add_row(p.name, p.type, default, ", ".join(p.constraints), p.description)
    console.print(table)
    for title, value in (
        ("signature", entry.signature),
        ("example request (POST /v2/models/<deployment>/infer)", entry.example_request),
    ):
        console.print(f"[bold]{title}[/bold]")
        console.print(json.dumps(value), highlight=False, soft_wrap=True, markup=False)
    console.print("[bold]train it[/bold]")
    console.print(entry.train_command, highlight=False, soft_wrap=True, markup=False)
    if not entry.available:
        console.print(
            f"not installed on the server: it needs the {entry.extra} extra ({entry.install})",
            highlight=False,
            soft_wrap=True,
            markup=False,
        )


@app.command("show")
def show(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="The entry, e.g. classical.logistic_regression.")],
    json_: JsonOpt = False,
) -> None:
    """Show an entry: params with types and defaults, signature, example request, train command.

    Example: aimass zoo show classical.logistic_regression
    """
    with open_client(ctx) as client:
        entry = client.zoo.get(name)
    if json_:
        print_json(entry)
    else:
        _show(entry)
