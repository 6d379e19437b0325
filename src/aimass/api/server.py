"""Starting a server: migrate, bootstrap the admin token, seed the demo, run uvicorn."""

from __future__ import annotations

import contextlib
import gc
import logging
import os
import shutil
import socket
import time
from pathlib import Path
from typing import Any

from aimass.api.app import PlatformApp, create_app
from aimass.api.connections import ServerConfig, connection_limits
from aimass.api.probes import bind_probe_socket
from aimass.artifacts.store import ArtifactStore
from aimass.auth.service import bootstrap_admin
from aimass.config import Settings, settings_env
from aimass.errors import InvalidInput
from aimass.platform import Platform
from aimass.plugins import PluginError, PluginLoad, load_plugins
from aimass.store.db import Database
from aimass.store.references import OrphanSweeper

log = logging.getLogger("aimass.server")


def check_exposure(settings: Settings) -> None:
    """Refuse to run without auth anywhere but loopback (SECURITY.md, item 1)."""
    if not settings.auth and not settings.listens_on_loopback:
        raise InvalidInput(
            f"refusing to listen on {settings.host} with auth off: anyone who can reach it "
            "could change models; keep auth on, or listen on 127.0.0.1"
        )


def tune_gc() -> None:
    """Make the garbage collector cheap for a long-lived server.

    Objects alive at start (libraries, models) move to the permanent generation,
    so full collections stop rescanning them, and young collections run less
    often; measured on the serving benchmark, this is what keeps p99 low.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 50, 100)


def prepare(settings: Settings) -> bool:
    """Everything a start needs once, before workers fork. Returns True if a token was made.

    Applies migrations, removes abandoned spool files and unfinished artifact
    writes (what a killed server left behind) and old bytes no version refers
    to, and creates the first admin token. "Abandoned" means untouched for
    ``abandoned_after_s``: other servers may share the home or the store, and
    their uploads in flight stay. The leader sweeps again every ``sweep_interval_s``.
    """
    check_exposure(settings)
    from aimass.platform.jobs import check_job_sandbox

    check_job_sandbox(settings)
    settings.home.mkdir(parents=True, exist_ok=True)
    os.chmod(settings.home, 0o700)
    db = Database(settings.resolved_database_url)
    try:
        db.upgrade()
        _sweep_spool(settings.spool_dir, settings.abandoned_after_s)
        store = ArtifactStore(settings.resolved_artifacts)
        sweeper = OrphanSweeper(db, store, settings.sweep_interval_s, settings.abandoned_after_s)
        if swept := sweeper.sweep():
            log.warning("removed %d abandoned artifact file(s)", len(swept))
        with db.session() as session:
            return bootstrap_admin(session, settings.token_file)
    finally:
        db.close()


def _sweep_spool(spool: Path, min_age_s: float) -> None:
    """Remove the spool files untouched for ``min_age_s`` (another server's may be in use)."""
    spool.mkdir(parents=True, exist_ok=True)
    cutoff = time.time() - min_age_s
    for entry in spool.iterdir():
        with contextlib.suppress(OSError):
            if entry.lstat().st_mtime < cutoff:
                if entry.is_dir() and not entry.is_symlink():
                    shutil.rmtree(entry, ignore_errors=True)
                else:
                    entry.unlink()


def server_config(settings: Settings, app: Any, **options: Any) -> ServerConfig:
    """The uvicorn config every server uses (the CLI's and the tests'), with its protections.

    Raises the open-file limit to the hard limit and keeps the connection cap
    below it; headers must arrive within ``header_timeout_s``, and a body may
    not stall for ``body_timeout_s``.
    """
    limits = connection_limits(
        settings.header_timeout_s,
        settings.body_timeout_s,
        settings.max_connections,
        settings.max_inflight,
    )
    defaults: dict[str, Any] = {
        "host": settings.host,
        "port": settings.port,
        "log_level": "warning",
        "access_log": False,
        "server_header": False,
        "loop": "auto",  # uvloop when installed (it is, off Windows)
        "ws": "none",
        # Idle keep-alive sockets go after 5 s (uvicorn's default), said here on purpose.
        "timeout_keep_alive": 5,
        # Connections the kernel queues before the worker accepts them: a crowd past the
        # connection cap reconnects at once, and a SYN dropped from a full queue is
        # retried 1, 3, 7 s later (the refusals' tail). The kernel caps it at somaxconn.
        "backlog": max(4096, limits.max_connections),
    }
    defaults.update(options)
    return ServerConfig(app, limits=limits, **defaults)


def install_system_log(settings: Settings) -> None:
    """Send this process's ``aimass`` log records to the structured system log."""
    from aimass.api.edge import request_id_var
    from aimass.monitoring.system_log import JsonLogHandler, install

    install(
        JsonLogHandler(
            settings.system_log_dir,
            retention_days=settings.system_log_retention_days,
            request_id=request_id_var.get,
        )
    )


def create_app_from_env() -> PlatformApp:
    """Factory for uvicorn workers: settings from ``AIMASS_*`` (the CLI exports its flags)."""
    settings = Settings()
    install_system_log(settings)
    app = create_app(Platform.from_settings(settings))
    if settings.tune_gc:
        tune_gc()
    return app


def _platform(settings: Settings, plugins: PluginLoad | None = None) -> Platform:
    """The platform; in strict plugin mode a failed plugin exits with one line saying why."""
    try:
        return Platform.from_settings(settings, plugins)
    except PluginError as exc:
        raise SystemExit(f"error: {exc}") from None


def ui_line(url: str) -> str:
    """What ``aimass server`` says about the web UI at ``url``."""
    from aimass.api.ui import BUILD_COMMAND, is_built

    if is_built():
        return f"web UI on {url}/ (sign in with the admin token)"
    return f"web UI not built: run `{BUILD_COMMAND}`; {url}/ says so meanwhile"


def run_server(settings: Settings, demo: bool = False, plugins: PluginLoad | None = None) -> None:
    """Prepare, optionally seed the demo, and serve until interrupted.

    ``plugins``: the plugins' load, started early by the caller (one worker only).
    """
    from rich.console import Console

    console = Console(stderr=True)
    # Bind first: a taken port is one clear line, before anything is prepared or printed.
    sock = listen(settings.host, settings.port)
    if settings.probe_port is not None:  # each worker binds it; say now if it is taken
        check_free(settings.host, settings.probe_port)
    created = prepare(settings)
    if settings.auth:
        verb = "created" if created else "is"
        console.print(f"admin token {verb} in [bold]{settings.token_file}[/] (owner-only)")
    else:
        console.print("[yellow]auth is OFF: loopback only[/]")
    if demo:
        from aimass.demo import seed_demo

        for line in seed_demo(settings):
            console.print(line)
    url = f"http://{settings.host}:{settings.port}"
    console.print(f"aimass serving on [bold]{url}[/]  (API docs: {url}/docs)")
    console.print(ui_line(url), highlight=False)
    if settings.workers == 1:
        install_system_log(settings)
        app = create_app(_platform(settings, plugins))
        if settings.tune_gc:
            tune_gc()
        _serve(server_config(settings, app), sock)
        return
    if settings.strict_plugins:  # fail here once, not in every worker
        try:
            load_plugins(strict=True, timeout_s=settings.plugin_timeout_s)
        except PluginError as exc:
            raise SystemExit(f"error: {exc}") from None
    os.environ.update(settings_env(settings))
    # Every worker writes its metrics to files here and every scrape sums them all.
    metrics_dir = settings.home / "prometheus"
    shutil.rmtree(metrics_dir, ignore_errors=True)
    metrics_dir.mkdir(parents=True)
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(metrics_dir)
    _serve(
        server_config(
            settings,
            "aimass.api.server:create_app_from_env",
            factory=True,
            workers=settings.workers,
        ),
        sock,
    )


def listen(host: str, port: int) -> socket.socket:
    """Bind ``host:port`` as uvicorn would; a taken port exits with one line saying so."""
    sock = socket.socket(family=socket.AF_INET6 if ":" in host else socket.AF_INET)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise SystemExit(
            f"error: cannot listen on {host}:{port}: {exc.strerror or exc} "
            "(is another server running there? choose another --port)"
        ) from None
    sock.set_inheritable(True)
    return sock


def check_free(host: str, port: int) -> None:
    """Exit with one line if ``host:port`` cannot be bound (the probe port, before start)."""
    try:
        bind_probe_socket(host, port, reuse_port=False).close()
    except OSError as exc:
        raise SystemExit(
            f"error: cannot listen on {host}:{port} for the probes: {exc.strerror or exc} "
            "(choose another --probe-port)"
        ) from None


def _serve(config: ServerConfig, sock: socket.socket) -> None:
    """What ``uvicorn.run`` does, for a config built here, on a socket bound already."""
    import uvicorn
    from uvicorn.supervisors import Multiprocess

    server = uvicorn.Server(config)
    try:
        if config.workers > 1:
            Multiprocess(config, sockets=[sock]).run()
        else:
            server.run(sockets=[sock])
    except KeyboardInterrupt:
        pass
    if config.workers == 1 and not server.started:
        raise SystemExit(3)  # uvicorn's "startup failed" status
