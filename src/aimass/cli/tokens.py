"""``aimass tokens``: create, list and revoke API tokens (admin); ``reset-admin`` recovers.

``reset-admin`` is the one command that works on the installation's database
directly, with no server: it is for the server's OS user, locked out of the API.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from aimass.cli._session import (
    JsonOpt,
    errors_as_exit,
    format_time,
    open_client,
    print_json,
    stdout_console,
)
from aimass.cli.server import DatabaseOpt, HomeOpt, build_settings, masked_url

app = typer.Typer(
    name="tokens",
    help="Manage API tokens and their roles (needs an admin token).",
    no_args_is_help=True,
)

if TYPE_CHECKING:
    from aimass.entities.auth import Token

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


@app.command("reset-admin")
def reset_admin(
    home: HomeOpt = None,
    database_url: DatabaseOpt = None,
    json_: JsonOpt = False,
) -> None:
    """Recover a locked-out installation: a new admin token valid on all projects.

    Run it as the server's OS user on the installation itself (no server needed):
    it writes the token to the database and its secret to HOME/token (owner-only),
    replacing the file. Revoke the tokens you lost afterwards.

    Example: aimass tokens reset-admin --home ~/.aimass
    """
    with errors_as_exit():
        settings = build_settings(home=home, database_url=database_url)
        token = _reset_admin(settings.resolved_database_url, settings.token_file)
    where = str(settings.token_file)
    if json_:
        print_json({"id": token.id, "name": token.name, "token_file": where})
        return
    stdout_console().print(
        f"created admin token {token.id} ({token.name}, all projects); "
        f"its secret is in {where} (readable by you only)",
        highlight=False,
        markup=False,
        soft_wrap=True,
    )


def _reset_admin(url: str, token_file: Path) -> Token:
    from sqlalchemy import inspect
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import SQLAlchemyError

    from aimass.auth.service import reset_admin as reset
    from aimass.errors import AimassError
    from aimass.store.db import Database

    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite" and not Path(parsed.database or "").is_file():
        # Opening it would create an empty database: say where we looked instead.
        raise AimassError(
            f"no aimass installation at {masked_url(url)}: "
            "pass the server's --home (or --database-url)"
        )
    db = Database(url)
    try:
        if not inspect(db.engine).has_table("tokens"):
            raise AimassError(
                f"no aimass installation at {masked_url(url)}: start the server once, "
                "or pass the server's --home (or --database-url)"
            )
        db.upgrade()  # as the server does at start: the token table must be current
        with db.session() as session:
            return reset(session, token_file)
    except SQLAlchemyError as exc:  # a driver error: say which database, no traceback
        cause = getattr(exc, "orig", None) or exc
        raise AimassError(
            f"could not reach {masked_url(url)}: {type(exc).__name__}: {cause}"
        ) from exc
    finally:
        db.close()
