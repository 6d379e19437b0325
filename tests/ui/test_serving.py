"""How the server serves the web UI: built or not, its routes, its assets, beside the API."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
from fastapi import FastAPI

from aimass.api.errors import install_error_handlers
from aimass.api.server import ui_line
from aimass.api.ui import BUILD_COMMAND, install_ui
from conftest import serve_app
from ui.conftest import ui_settings


@contextmanager
def app_over(dist: Path) -> Iterator[httpx.Client]:
    """A real server of a small app with one API route and the UI from ``dist``."""
    app = FastAPI()
    install_error_handlers(app)

    @app.get("/api/v1/thing")
    def thing() -> dict[str, str]:
        return {"api": "yes"}

    install_ui(app, dist)
    with serve_app(ui_settings(dist.parent), app) as url, httpx.Client(base_url=url) as client:
        yield client


def built(tmp_path: Path) -> Path:
    dist = tmp_path / "dist"
    (dist / "assets").mkdir(parents=True)
    (dist / "index.html").write_text('<script type="module" src="/assets/app-1a2b.js"></script>')
    (dist / "assets" / "app-1a2b.js").write_text("console.log('ui')")
    return dist


def test_an_unbuilt_ui_says_so_at_the_root_with_the_build_command(tmp_path: Path) -> None:
    with app_over(tmp_path / "missing") as client:
        answer = client.get("/")
        assert answer.status_code == 200
        assert BUILD_COMMAND in answer.text
        assert "<script" not in answer.text
        assert client.get("/jobs/3").text == answer.text


def test_app_routes_answer_the_index_and_assets_are_cached_for_good(tmp_path: Path) -> None:
    with app_over(built(tmp_path)) as client:
        for path in ("/", "/jobs", "/jobs/12", "/models/iris-rf", "/admin"):
            answer = client.get(path)
            assert answer.status_code == 200, path
            assert "/assets/app-1a2b.js" in answer.text
            assert answer.headers["cache-control"] == "no-cache"
        asset = client.get("/assets/app-1a2b.js")
        assert asset.status_code == 200
        assert "immutable" in asset.headers["cache-control"]
        assert "javascript" in asset.headers["content-type"]


def test_the_api_and_unknown_paths_keep_their_json_answers(tmp_path: Path) -> None:
    with app_over(built(tmp_path)) as client:
        assert client.get("/api/v1/thing").json() == {"api": "yes"}
        for path in ("/assets/nope.js", "/assets/..%2Findex.html", "/assets/x.html", "/elsewhere"):
            answer = client.get(path)
            assert answer.status_code == 404, path
            assert answer.headers["content-type"] == "application/json", path


def test_the_server_names_the_ui_address_or_how_to_build_it() -> None:
    line = ui_line("http://127.0.0.1:8080")
    assert "http://127.0.0.1:8080/" in line or BUILD_COMMAND in line
