"""``aimass plugins``: the server's plugins, the slots each filled, and why any failed."""

from __future__ import annotations

from typing import TYPE_CHECKING

import typer

from aimass.cli._session import JsonOpt, open_client, print_json, stdout_console

if TYPE_CHECKING:
    from rich.table import Table

    from aimass.client.plugins import PluginStatus

app = typer.Typer(
    name="plugins",
    help="Plugins: what the server's installed aimass.plugins entry points added, or why not.",
    no_args_is_help=True,
)


@app.command("list")
def list_plugins(ctx: typer.Context, json_: JsonOpt = False) -> None:
    """List the plugins: package and version, contract, status, and slots filled or the reason.

    Example: aimass plugins list
    """
    with open_client(ctx) as client:
        plugins = client.plugins.list()
    if json_:
        print_json(plugins)
        return
    stdout_console().print(plugins_table(plugins))


def _slots(plugin: PluginStatus) -> str:
    return "; ".join(f"{slot}: {', '.join(names)}" for slot, names in plugin.slots.items())


def plugins_table(plugins: list[PluginStatus]) -> Table:
    """One row per plugin that reads at 80 columns; a failure's reason wraps in its cell."""
    from rich.table import Table

    failed = sum(p.status == "failed" for p in plugins)
    table = Table(title=f"{len(plugins)} plugin(s), {failed} failed", box=None, pad_edge=False)
    table.add_column("name", overflow="fold", max_width=20)
    table.add_column("package", overflow="fold", max_width=18)
    table.add_column("contract", no_wrap=True)
    table.add_column("status", no_wrap=True)
    table.add_column("slots filled, or the reason", overflow="fold", ratio=1)
    for p in plugins:
        package = f"{p.package} {p.version}" if p.package else "-"
        status = "[green]ok[/green]" if p.status == "ok" else "[red]failed[/red]"
        detail = _slots(p) if p.status == "ok" else (p.reason or "")
        table.add_row(p.name, package, p.contract or "-", status, detail or "-")
    return table
