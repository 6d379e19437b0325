"""``aimass server`` and ``aimass db``: run the server and manage its database."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from aimass.cli._session import errors_as_exit, print_json, stdout_console

if TYPE_CHECKING:
    from aimass.config import Settings
    from aimass.plugins import PluginLoad

db_app = typer.Typer(
    name="db", help="Manage the metadata database (SQLite or PostgreSQL).", no_args_is_help=True
)

HomeOpt = Annotated[
    Path | None,
    typer.Option(
        help="Folder for the SQLite database, artifacts and the first admin token "
        "(env AIMASS_HOME; default ~/.aimass)."
    ),
]
DatabaseOpt = Annotated[
    str | None,
    typer.Option(
        help="SQLAlchemy URL, e.g. postgresql+psycopg://user:pw@host/aimass "
        "(env AIMASS_DATABASE_URL; default SQLite under --home)."
    ),
]


def build_settings(**flags: object) -> Settings:
    """Settings from ``AIMASS_*`` variables, overridden by the flags that were given."""
    from aimass.config import Settings

    overrides = {k: v for k, v in flags.items() if v is not None}
    return Settings(**overrides)  # type: ignore[arg-type]


def masked_url(url: str) -> str:
    """A database URL with its password replaced by ``***``."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return url.split("@", 1)[-1] if "@" in url else url


def server(
    host: Annotated[
        str | None,
        typer.Option(
            help="Address to listen on (env AIMASS_HOST; default 127.0.0.1); "
            "anything beyond loopback needs auth on."
        ),
    ] = None,
    port: Annotated[
        int | None, typer.Option(help="TCP port (env AIMASS_PORT; default 8080).")
    ] = None,
    workers: Annotated[
        int | None,
        typer.Option(help="Worker processes answering requests (env AIMASS_WORKERS; default 1)."),
    ] = None,
    grpc_port: Annotated[
        int | None,
        typer.Option(
            help="Also serve the inference protocol over gRPC on this port, e.g. 8081 "
            "(env AIMASS_GRPC_PORT; needs the grpc extra; default off)."
        ),
    ] = None,
    probe_port: Annotated[
        int | None,
        typer.Option(
            help="Also answer /v2/health/live and /ready on this port, off the serving loop, "
            "e.g. 8082: point liveness and readiness probes there "
            "(env AIMASS_PROBE_PORT; default off).",
        ),
    ] = None,
    home: HomeOpt = None,
    database_url: DatabaseOpt = None,
    artifacts: Annotated[
        str | None,
        typer.Option(
            help="Where artifacts are stored: a folder or s3://bucket/prefix "
            "(env AIMASS_ARTIFACTS; default HOME/artifacts)."
        ),
    ] = None,
    max_upload_bytes: Annotated[
        int | None,
        typer.Option(help="Largest accepted upload in bytes (env AIMASS_MAX_UPLOAD_BYTES; 2 GiB)."),
    ] = None,
    no_auth: Annotated[
        bool,
        typer.Option(
            "--no-auth",
            help="Accept requests without a token (loopback only) (env AIMASS_AUTH=false).",
        ),
    ] = False,
    demo: Annotated[
        bool,
        typer.Option("--demo/--no-demo", help="Register a few small demo models on start."),
    ] = False,
    jobs: Annotated[
        bool | None,
        typer.Option(
            "--jobs/--no-jobs",
            help="Run a job scheduler in this server (env AIMASS_JOBS; default on).",
        ),
    ] = None,
    job_slots: Annotated[
        float | None,
        typer.Option(
            help="CPUs jobs may use on this node (env AIMASS_JOB_SLOTS; default all of them)."
        ),
    ] = None,
    executor: Annotated[
        str | None,
        typer.Option(
            help="Where jobs run: 'local' processes or a 'ray' cluster "
            "(env AIMASS_JOB_EXECUTOR; default local)."
        ),
    ] = None,
    ray_address: Annotated[
        str | None,
        typer.Option(
            help="Ray cluster to run jobs on, e.g. ray://head:10001 "
            "(env AIMASS_RAY_ADDRESS; default: start a local Ray)."
        ),
    ] = None,
    job_sandbox: Annotated[
        str | None,
        typer.Option(
            help="How job code is fenced off: 'bwrap' (bubblewrap) or 'none' (unsafe: jobs "
            "can read the server's database and token) (env AIMASS_JOB_SANDBOX; default bwrap)."
        ),
    ] = None,
) -> None:
    """Start the aimass server: web UI, REST API, inference, jobs and metrics in one process.

    It serves the web UI at /, the API with its docs at /docs, the predict routes,
    the KServe v2 routes under /v2 (and over gRPC with --grpc-port) and Prometheus
    metrics at /metrics.

    The database is created and upgraded on start; the first admin token is saved
    to HOME/token, where the SDK and the CLI on this machine find it.

    Example: aimass server --port 8080 --home ./aimass-home
    """
    with errors_as_exit():
        settings = build_settings(
            host=host,
            port=port,
            workers=workers,
            grpc_port=grpc_port,
            probe_port=probe_port,
            home=home,
            database_url=database_url,
            artifacts=artifacts,
            max_upload_bytes=max_upload_bytes,
            auth=False if no_auth else None,
            jobs=jobs,
            job_slots=job_slots,
            job_executor=executor,
            ray_address=ray_address,
            job_sandbox=job_sandbox,
        )
        plugins = start_plugins(settings)
        from aimass.api.server import run_server

        run_server(settings, demo=demo, plugins=plugins)


def start_plugins(settings: Settings) -> PluginLoad | None:
    """With one worker, start loading the plugins before the server imports its own modules.

    Their imports and deadlines then run beside the server's start, so a plugin
    that hangs delays it by what is left of its timeout, not all of it. Workers
    (``--workers`` > 1) each load their own.
    """
    if settings.workers != 1:
        return None
    from aimass.plugins import PluginLoad

    return PluginLoad(timeout_s=settings.plugin_timeout_s)


@db_app.command("upgrade")
def upgrade(
    home: HomeOpt = None,
    database_url: DatabaseOpt = None,
    json_: Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")] = False,
) -> None:
    """Apply every pending schema migration (the server also does this on start).

    Example: AIMASS_DATABASE_URL=postgresql+psycopg://u:pw@db/aimass aimass db upgrade
    """
    with errors_as_exit():
        settings = build_settings(home=home, database_url=database_url)
        url = settings.resolved_database_url
        from aimass.store.db import Database

        try:
            Database(url).upgrade()
        except Exception as exc:  # a driver error: show it without a traceback
            from aimass.errors import AimassError

            raise AimassError(
                f"could not upgrade {masked_url(url)}: {type(exc).__name__}: {exc}"
            ) from exc
    if json_:
        print_json({"database_url": masked_url(url), "upgraded": True})
    else:
        stdout_console().print(
            f"database {masked_url(url)} is up to date", highlight=False, markup=False
        )
