"""Helpers for the HTTP-edge tests: a real uvicorn server (the server's own config) for any app."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from tests.conftest import free_port, serve_app, sqlite_url

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


#: Serve any app with the server's own uvicorn config (shared with ``start_server``).
serving = serve_app


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
