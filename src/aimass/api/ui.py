"""The web UI at ``/``: the single-page app that ``ui/`` builds into ``api/ui_dist``.

``/`` and the app's own routes (``/models/x``, ``/jobs/12`` ...) answer its
``index.html`` (never cached, so a new build shows at once); ``/assets/*`` are
content-hashed, so browsers keep them a year. A server whose UI was not built
answers ``/`` with a short page naming the command that builds it. Everything
is served under the edge's strict CSP: the build has no inline script or style.
"""

from __future__ import annotations

import re
from importlib.resources import files
from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import FileResponse, HTMLResponse, Response

from aimass.errors import NotFound

#: The app's first path segments (``ui/src/app.tsx``); anything else stays the API's.
UI_ROUTES = (
    "models", "deployments", "jobs", "library", "datasets", "pipelines", "monitoring", "admin",
)  # fmt: skip
BUILD_COMMAND = "make ui"
_ASSET = re.compile(r"[A-Za-z0-9_.-]+\.(js|css|svg|png|woff2)")
_IMMUTABLE = {"Cache-Control": "public, max-age=31536000, immutable"}
_NO_CACHE = {"Cache-Control": "no-cache"}

NOT_BUILT_PAGE = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>aimass</title></head>
<body><h1>aimass</h1>
<p>The web UI was not built into this installation. Build it with
<code>{BUILD_COMMAND}</code> (Node and npm: <code>cd ui &amp;&amp; npm ci &amp;&amp;
npm run bundle</code>) and restart the server.</p>
<p>The API answers meanwhile: <a href="/docs">/docs</a>.</p>
</body></html>
"""


def ui_dist() -> Path:
    """Where the built UI lives in the installed package."""
    return Path(str(files("aimass.api") / "ui_dist"))


def is_built(dist: Path | None = None) -> bool:
    """Whether ``dist`` (default: the package's) holds a built UI."""
    return ((dist or ui_dist()) / "index.html").is_file()


def install_ui(app: FastAPI, dist: Path | None = None) -> None:
    """Serve the built UI from ``dist`` (default: the package's) at ``/``, after every route."""
    root = dist or ui_dist()

    def index() -> Response:
        if not is_built(root):
            return HTMLResponse(NOT_BUILT_PAGE, status_code=200, headers=_NO_CACHE)
        return FileResponse(root / "index.html", media_type="text/html", headers=_NO_CACHE)

    @app.get("/", include_in_schema=False)
    def home() -> Response:
        return index()

    @app.get("/assets/{name}", include_in_schema=False)
    def asset(name: str) -> Response:
        path = root / "assets" / name
        if not _ASSET.fullmatch(name) or not path.is_file():
            raise NotFound(f"no UI asset {name!r}")
        return FileResponse(path, headers=_IMMUTABLE)

    for segment in UI_ROUTES:

        @app.get(f"/{segment}", include_in_schema=False)
        @app.get(f"/{segment}/{{rest:path}}", include_in_schema=False)
        def page() -> Response:
            return index()
