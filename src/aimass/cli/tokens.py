"""``aimass tokens``: create, list and revoke API tokens (admin)."""

from __future__ import annotations

from typing import Annotated

import typer

from aimass.cli._session import format_time, open_client, print_json, stdout_console

app = typer.Typer(
    name="tokens",
    help="Manage API tokens and their roles (needs an admin token).",
    no_args_is_help=True,
)

JsonOpt = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON instead.")]
ROLES = ("viewer", "editor", "admin")


@app.command("create")
def create(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="A name to recognise the token by.")],
    role: Annotated[
        str,
        typer.Option(
            "--role", "-r", help="viewer (reads), editor (writes) or admin (manages tokens)."
        ),
    ],
    project: Annotated[
        str | None, typer.Option(help="Limit the token to this project; all when left out.")
    ] = None,
    json_: JsonOpt = False,
) -> None:
    """Create a token; its secret is printed once and never again.

    Example: aimass tokens create ci-bot --role editor --project vision
    """
    if role not in ROLES:
        raise typer.BadParameter("use viewer, editor or admin", param_hint="--role")
    with open_client(ctx) as client:
        token = client.tokens.create(name, role, project=project)  # type: ignore[arg-type]
    if json_:
        print_json(token)
        return
    console = stdout_console()
    console.print(
        f"created token {token.id} ({token.name}, {token.role}, project {token.project or 'all'})",
        highlight=False,
        markup=False,
    )
    console.print("secret (shown once, save it now):", highlight=False)
    console.print(token.secret, highlight=False, markup=False, soft_wrap=True)


@app.command("list")
def list_tokens(ctx: typer.Context, json_: JsonOpt = False) -> None:
    """List every token with its role and whether it is revoked.

    Example: aimass tokens list
    """
    with open_client(ctx) as client:
        tokens = client.tokens.list()
    if json_:
        print_json(tokens)
        return
    from rich.table import Table

    table = Table(title=f"{len(tokens)} token(s)")
    for column in ("id", "name", "role", "project", "created", "revoked"):
        table.add_column(column, overflow="fold")
    for t in tokens:
        table.add_row(
            str(t.id),
            t.name,
            t.role,
            t.project or "(all)",
            format_time(t.created_at),
            format_time(t.revoked_at) if t.revoked_at else "",
        )
    stdout_console().print(table)


@app.command("revoke")
def revoke(
    ctx: typer.Context,
    token_id: Annotated[int, typer.Argument(metavar="ID", help="The token's id (see list).")],
    json_: JsonOpt = False,
) -> None:
    """Revoke a token; requests that carry it are refused from now on.

    Example: aimass tokens revoke 4
    """
    with open_client(ctx) as client:
        token = client.tokens.revoke(token_id)
    if json_:
        print_json(token)
    else:
        stdout_console().print(f"revoked token {token.id} ({token.name})", markup=False)
