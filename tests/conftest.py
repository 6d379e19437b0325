"""Shared fixtures: a database on each backend, and a real server on a free port.

``db_url`` is parametrized over SQLite and PostgreSQL; every fixture built on it
(``db``, ``live_server``, ``client``) runs each test on both. PostgreSQL is the
one at 127.0.0.1:5432 (``AIMASS_TEST_POSTGRES``); locally its tests are skipped
when it is unreachable, in CI (``CI=true``) that is a failure.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest

from aimass.config import Settings, settings_env

if TYPE_CHECKING:
    from aimass.platform import Platform
    from aimass.store.db import Database

PG_ADMIN_URL = os.environ.get(
    "AIMASS_TEST_POSTGRES", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def _pg_reachable() -> bool:
    try:
        import psycopg

        with psycopg.connect(PG_ADMIN_URL.replace("+psycopg", ""), connect_timeout=3):
            return True
    except Exception:
        return False


@pytest.fixture(scope="session")
def pg_template() -> Iterator[str | None]:
    """A migrated PostgreSQL template database, or None when PostgreSQL is unreachable."""
    if not _pg_reachable():
        if IN_CI:
            pytest.fail(f"PostgreSQL is required in CI and unreachable at {PG_ADMIN_URL}")
        yield None
        return
    import psycopg

    from aimass.store.db import Database

    name = f"aimass_tmpl_{uuid.uuid4().hex[:10]}"
    admin = PG_ADMIN_URL.replace("+psycopg", "")
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    db = Database(_with_db(PG_ADMIN_URL, name))
    db.upgrade()
    db.close()
    yield name
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _with_db(url: str, name: str) -> str:
    return url.rsplit("/", 1)[0] + "/" + name


def sqlite_url(tmp_path: Path) -> str:
    """Create a migrated SQLite database under ``tmp_path``; its URL.

    For the ``db_url`` below and for test folders that override it with SQLite only.
    """
    from aimass.store.db import Database

    url = f"sqlite:///{tmp_path / 'meta.db'}"
    db = Database(url)
    db.upgrade()
    db.close()
    return url


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Run a ``backend``-marked test on that database backend only.

    Every test on ``db_url`` runs on both backends; the slow end-to-end ones (real jobs,
    server processes) are pinned to one each, alternating between them, which halves their
    cost and keeps both backends under real work. The store-level tests still run on both.
    """
    kept: list[pytest.Item] = []
    dropped: list[pytest.Item] = []
    for item in items:
        marker = item.get_closest_marker("backend")
        callspec = getattr(item, "callspec", None)
        param = callspec.params.get("db_url") if callspec is not None else None
        if marker is not None and param is not None and param != marker.args[0]:
            dropped.append(item)
        else:
            kept.append(item)
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = kept


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, migrated database URL on each backend."""
    if request.param == "sqlite":
        yield sqlite_url(tmp_path)
        return
    template = request.getfixturevalue("pg_template")
    if template is None:
        pytest.skip("PostgreSQL unreachable at " + PG_ADMIN_URL)
    import psycopg

    name = f"aimass_t_{uuid.uuid4().hex[:12]}"
    admin = PG_ADMIN_URL.replace("+psycopg", "")
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
    yield _with_db(PG_ADMIN_URL, name)
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def db(db_url: str) -> Iterator[Database]:
    """A ``Database`` on ``db_url`` (so on each backend), closed after the test."""
    from aimass.store.db import Database

    database = Database(db_url)
    yield database
    database.close()


@pytest.fixture
def settings(tmp_path: Path, db_url: str) -> Settings:
    """Settings for an isolated installation under ``tmp_path``."""
    return Settings(
        home=tmp_path / "home",
        database_url=db_url,
        artifacts=str(tmp_path / "artifacts"),
        port=free_port(),
        max_upload_bytes=50 * 1024 * 1024,
        tune_gc=False,  # the test process is not a long-lived server
        jobs=False,  # tests that run jobs ask for them (tests/jobs/conftest.py)
    )


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class LiveServer:
    """A real uvicorn server in a background thread."""

    url: str
    admin_token: str
    home: Path
    settings: Settings


@contextmanager
def serve_app(settings: Settings, app: Any) -> Iterator[str]:
    """Serve ``app`` in a thread with the server's own uvicorn config; yields its URL.

    The server's own config (header deadline, connection cap), so tests meet the real edge.
    """
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


def start_server(settings: Settings, platform: Platform | None = None) -> Iterator[LiveServer]:
    """Prepare an installation and serve it (on ``platform`` if given) until closed."""
    from aimass.api.app import create_app
    from aimass.api.server import prepare
    from aimass.platform import Platform

    prepare(settings)
    app = create_app(platform or Platform.from_settings(settings))
    with serve_app(settings, app) as url:
        token = settings.token_file.read_text().strip() if settings.auth else ""
        yield LiveServer(url=url, admin_token=token, home=settings.home, settings=settings)


def worker_settings(tmp_path: Path, workers: int = 2, **overrides: Any) -> Settings:
    """A SQLite server with ``workers`` processes, no auth and no jobs, on a free port."""
    return Settings(
        home=tmp_path / "home",
        database_url=f"sqlite:///{tmp_path / 'aimass.db'}",
        artifacts=str(tmp_path / "artifacts"),
        port=free_port(),
        workers=workers,
        auth=False,
        jobs=False,
        tune_gc=False,
        **overrides,
    )


def start_server_process(settings: Settings, timeout_s: float = 60) -> subprocess.Popen[bytes]:
    """Start ``aimass server`` as its own process on ``settings``; return once it answers."""
    env = {**os.environ, **settings_env(settings)}
    process = subprocess.Popen(
        [sys.executable, "-m", "aimass.cli", "server"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.monotonic() + timeout_s
    while True:
        if process.poll() is not None:
            raise AssertionError(f"the server exited at start (code {process.returncode})")
        try:
            if httpx.get(f"http://127.0.0.1:{settings.port}/v2/health/live").status_code == 200:
                return process
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            process.kill()
            raise AssertionError("the server did not start")
        time.sleep(0.1)


@pytest.fixture
def live_server(settings: Settings) -> Iterator[LiveServer]:
    """A real server on a fresh installation (each backend), with auth on."""
    yield from start_server(settings)


@pytest.fixture
def client(live_server: LiveServer) -> Iterator[object]:
    """An ``aimass.Client`` for the live server, holding the admin token."""
    import aimass

    with aimass.Client(url=live_server.url, token=live_server.admin_token) as c:
        yield c


@pytest.fixture
def http(live_server: LiveServer) -> Iterator[object]:
    """A plain httpx client with the admin token, for API-level tests."""
    import httpx

    with httpx.Client(
        base_url=live_server.url,
        headers={"Authorization": f"Bearer {live_server.admin_token}"},
        timeout=60,
    ) as c:
        yield c


@dataclass
class ModelFiles:
    """Real model files made from sklearn's bundled breast_cancer data."""

    onnx: Path
    skops: Path
    pickle: Path
    x: object
    y: object


@pytest.fixture(scope="session")
def model_files(tmp_path_factory: pytest.TempPathFactory) -> ModelFiles:
    """An ONNX file, a skops file and a (trusted-only) pickle of LogisticRegressions."""
    import pickle

    import skops.io
    from skl2onnx import to_onnx
    from sklearn.datasets import load_breast_cancer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    out = tmp_path_factory.mktemp("models")
    x, y = load_breast_cancer(return_X_y=True)
    x = x.astype("float32")
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=500)).fit(x, y)
    onnx_path = out / "model.onnx"
    onnx_path.write_bytes(to_onnx(model, x[:1], options={"zipmap": False}).SerializeToString())
    skops_path = out / "model.skops"
    skops.io.dump(model, skops_path)
    pickle_path = out / "model.pkl"
    pickle_path.write_bytes(pickle.dumps(model))
    return ModelFiles(onnx=onnx_path, skops=skops_path, pickle=pickle_path, x=x, y=y)


CHROMIUM = "/usr/bin/chromium"


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Debian's Chromium driven by Playwright (never a downloaded browser); one per test module.

    Not one per session: Playwright's sync API runs an asyncio loop on the main
    thread while it is open, and every later test's ``asyncio.run`` would fail.

    Skipped where ``/usr/bin/chromium`` is missing (``make install`` installs it).
    """
    if not Path(CHROMIUM).exists():
        pytest.skip(f"{CHROMIUM} is missing: `apt-get install -y chromium` (make install does)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            yield chromium
        finally:
            chromium.close()
