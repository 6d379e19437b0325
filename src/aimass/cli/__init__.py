"""The ``aimass`` command: typer over the SDK, plus ``server`` and ``db``.

Must not import the SDK, rich or any ML library at import time, so that
``aimass --help`` answers at once; each command imports what it uses.
"""

from __future__ import annotations

from typing import Annotated

import typer

from aimass.cli import (
    datasets,
    deployments,
    jobs,
    models,
    monitoring,
    pipelines,
    plugins,
    predict,
    schedules,
    server,
    tokens,
    whoami,
    zoo,
)
from aimass.cli._session import RootOptions

app = typer.Typer(
    name="aimass",
    help="aimass: register, serve and manage machine-learning models.",
    no_args_is_help=True,
    context_settings={"help_option_names": ["-h", "--help"]},
)
app.add_typer(models.app, name="models")
app.add_typer(datasets.app, name="datasets")
app.add_typer(tokens.app, name="tokens")
app.add_typer(deployments.app, name="deployments")
app.add_typer(jobs.app, name="jobs")
app.add_typer(schedules.app, name="schedules")
app.add_typer(pipelines.app, name="pipelines")
app.add_typer(zoo.app, name="zoo")
app.add_typer(monitoring.app, name="monitoring")
app.add_typer(plugins.app, name="plugins")
app.add_typer(server.db_app, name="db")
app.command("server")(server.server)
app.command("whoami")(whoami.whoami)
app.command("deploy")(deployments.deploy)
app.command("predict")(predict.predict)


def _version(value: bool) -> None:
    if value:
        from aimass._version import __version__

        typer.echo(f"aimass {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    ctx: typer.Context,
    url: Annotated[
        str | None,
        typer.Option(help="Server URL (env AIMASS_URL; default http://127.0.0.1:8080)."),
    ] = None,
    token: Annotated[
        str | None,
        typer.Option(
            help="API token (env AIMASS_TOKEN; default the token the local server saved). "
            "Prefer the variable: options show up in process lists."
        ),
    ] = None,
    project: Annotated[
        str | None, typer.Option(help="Project to work in (env AIMASS_PROJECT; default default).")
    ] = None,
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version, is_eager=True, help="Print the version."),
    ] = False,
) -> None:
    """aimass: register, serve and manage machine-learning models.

    Example: aimass models upload iris model.onnx && aimass models list
    """
    ctx.obj = RootOptions(url=url, token=token, project=project)


def main() -> None:
    """Entry point of the ``aimass`` console script."""
    app()


__all__ = ["app", "main"]
