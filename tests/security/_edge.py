"""Helpers for the HTTP-edge tests: a real uvicorn server (the server's own config) for any app."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from tests.conftest import free_port, sqlite_url

from aimass.config import Settings


def sqlite_settings(tmp_path: Path, **changes: Any) -> Settings:
    """Settings for an installation on SQLite under ``tmp_path`` (for tests about sockets)."""
    return Settings(
        home=tmp_path / "home",
        database_url=sqlite_url(tmp_path),
        artifacts=str(tmp_path / "artifacts"),
        port=free_port(),
        tune_gc=False,
        jobs=False,
        **changes,
    )


@contextmanager
def serving(settings: Settings, app: Any) -> Iterator[str]:
    """Serve ``app`` with ``api.server.server_config`` on 127.0.0.1; yields its URL."""
    import uvicorn

    from aimass.api.server import server_config

    config = server_config(settings, app, host="127.0.0.1", lifespan="on")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("test server did not start")
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{settings.port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


@contextmanager
def platform(settings: Settings) -> Iterator[tuple[str, Any]]:
    """A prepared installation and its real app, served; yields (url, app)."""
    from aimass.api.app import create_app
    from aimass.api.server import prepare
    from aimass.platform import Platform

    prepare(settings)
    app = create_app(Platform.from_settings(settings))
    with serving(settings, app) as url:
        yield url, app
