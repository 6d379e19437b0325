"""``aimass whoami``: which token the CLI is using, with its role and project."""

from __future__ import annotations

from typing import Annotated

import typer

from aimass.cli._session import open_client, print_json, stdout_console


def whoami(
    ctx: typer.Context,
    json_: Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")] = False,
) -> None:
    """Show who the server thinks you are: token name, role and project.

    Example: aimass --url http://gpu-box:8080 whoami
    """
    with open_client(ctx) as client:
        principal = client.whoami()
        url = client.url
    if json_:
        print_json({**principal.model_dump(mode="json"), "url": url})
        return
    stdout_console().print(
        f"{principal.name} ({principal.role}, project {principal.project or 'all'}) at {url}",
        highlight=False,
        markup=False,
    )
