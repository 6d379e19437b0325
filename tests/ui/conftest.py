"""Browser tests of the web UI: the built app, a real server per module, Debian's Chromium.

The UI is built once per session when the package holds no build (``make ui``: needs
Node and npm). Every page a test opens records the requests Chromium makes; the
``page`` fixture fails a test whose page asked any host but the server.
Screenshots go to ``.artifacts/ui/`` (git-ignored), one per page visited.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from aimass.config import Settings
from conftest import LiveServer, free_port, sqlite_url, start_server

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / ".artifacts" / "ui"


@pytest.fixture(scope="session")
def ui_built() -> None:
    """The UI built into the package (``make ui`` once, when it is missing)."""
    from aimass.api.ui import is_built

    if is_built():
        return
    if shutil.which("npm") is None:
        pytest.skip("the web UI is not built and npm is missing to build it (`make ui`)")
    bin_dir = str(Path(sys.executable).parent)
    subprocess.run(["make", "ui", f"BIN={bin_dir}"], cwd=ROOT, check=True, timeout=600)
    assert is_built(), "make ui did not build the UI"


def ui_settings(tmp: Path, **changes: Any) -> Settings:
    """An installation under ``tmp`` on SQLite (the UI reads the API, never the database)."""
    return Settings(
        home=tmp / "home",
        database_url=sqlite_url(tmp),
        artifacts=str(tmp / "artifacts"),
        port=free_port(),
        max_upload_bytes=50 * 1024 * 1024,
        tune_gc=False,
        jobs=False,
    ).model_copy(update=changes)


def serve(tmp_path_factory: pytest.TempPathFactory, **changes: Any) -> Iterator[LiveServer]:
    """A module's server: a fresh installation, auth on."""
    yield from start_server(ui_settings(tmp_path_factory.mktemp("ui"), **changes))


def api(server: LiveServer, token: str | None = None) -> httpx.Client:
    """An httpx client for ``server`` holding ``token`` (default: the admin's)."""
    return httpx.Client(
        base_url=server.url,
        headers={"Authorization": f"Bearer {token or server.admin_token}"},
        timeout=60,
    )


class Browse:
    """One browser context on the server: sign in, open pages, take screenshots."""

    def __init__(self, context: Any, server: LiveServer) -> None:
        self.context = context
        self.server = server
        self.requests: list[str] = []
        self.csp_errors: list[str] = []
        context.on("request", lambda request: self.requests.append(request.url))
        self.page = context.new_page()
        self.page.on("console", self._console)
        self.page.set_default_timeout(30_000)

    def _console(self, message: Any) -> None:
        if message.type == "error" and "Content Security Policy" in message.text:
            self.csp_errors.append(message.text)

    def sign_in(self, token: str | None = None) -> Any:
        page = self.page
        page.goto(self.server.url + "/")
        page.fill("input[name=token]", token or self.server.admin_token)
        page.click("button[type=submit]")
        page.wait_for_selector("nav .who")
        return page

    def open(self, path: str) -> Any:
        """Go to ``path`` inside the app (a full load, as a pasted address would)."""
        self.page.goto(self.server.url + path)
        self.page.wait_for_selector("main h1")
        return self.page

    def shot(self, name: str) -> Path:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        path = ARTIFACTS / f"{name}.png"
        self.page.screenshot(path=str(path), full_page=True)
        return path

    def foreign_requests(self) -> list[str]:
        """Requests to anything but the server (data: and blob: are the page's own)."""
        own = urlsplit(self.server.url).netloc
        return [
            u
            for u in self.requests
            if urlsplit(u).scheme not in ("data", "blob") and urlsplit(u).netloc != own
        ]


@pytest.fixture
def browse(browser: Any, ui_built: None) -> Iterator[Callable[[LiveServer], Browse]]:
    """Open a fresh browser context on a server; fails the test if a page asked another host."""
    opened: list[Browse] = []

    def make(server: LiveServer) -> Browse:
        b = Browse(browser.new_context(viewport={"width": 1280, "height": 900}), server)
        opened.append(b)
        return b

    yield make
    for b in opened:
        b.context.close()
    for b in opened:
        assert b.foreign_requests() == [], "the UI asked another host"
        assert b.csp_errors == [], "the page broke the CSP"


def until(check: Callable[[], Any], timeout: float = 30.0, what: str = "condition") -> Any:
    """Poll ``check`` until it returns something truthy; fail naming ``what`` after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)
