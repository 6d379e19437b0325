"""/docs in real Chromium: Authorize with a token, then "Try it out" on a list and a predict route.

Swagger UI is served from packaged files under the edge's strict
Content-Security-Policy; a policy violation or a missing security scheme shows
here as a page that never renders, an Authorize button that is not there, or a
401 in the response panel.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from aimass.config import Settings
from conftest import LiveServer, free_port, sqlite_url, start_server
from tests_support import deploy, upload


@pytest.fixture(scope="module")
def docs_server(tmp_path_factory: pytest.TempPathFactory, model_files: Any) -> Iterator[LiveServer]:
    """One server for the module, auth on, with model ``m`` deployed as ``dep``."""
    tmp = tmp_path_factory.mktemp("docs")
    settings = Settings(
        home=tmp / "home",
        database_url=sqlite_url(tmp),
        artifacts=str(tmp / "artifacts"),
        port=free_port(),
        tune_gc=False,
        jobs=False,
    )
    for server in start_server(settings):
        headers = {"Authorization": f"Bearer {server.admin_token}"}
        with httpx.Client(base_url=server.url, headers=headers, timeout=60) as http:
            upload(http, "m", Path(model_files.onnx))
            deploy(http, {"name": "dep", "model": "m", "version": 1})
        yield server


@pytest.fixture
def page(browser: Any, docs_server: LiveServer) -> Iterator[Any]:
    """A fresh page on /docs that records what the browser console reports."""
    context = browser.new_context(base_url=docs_server.url)
    page = context.new_page()
    page.console_errors = []
    page.on("console", lambda m: page.console_errors.append(m.text) if m.type == "error" else None)
    page.goto("/docs")
    page.wait_for_selector(".opblock", timeout=30_000)
    try:
        yield page
    finally:
        context.close()


def _authorize(page: Any, token: str) -> None:
    page.click("button.authorize")
    dialog = page.locator(".modal-ux")
    dialog.locator("input").first.fill(token)
    dialog.locator("button.authorize").click()
    dialog.locator("button.btn-done").click()


def _operation(page: Any, method: str, path: str) -> Any:
    block = page.locator(f".opblock-{method}").filter(
        has=page.locator(f".opblock-summary-path[data-path='{path}']")
    )
    block.locator(".opblock-summary").first.click()
    block.locator("button.try-out__btn").click()
    return block


def _execute(block: Any) -> tuple[str, Any]:
    block.locator("button.execute").click()
    live = block.locator(".live-responses-table .response").first
    live.wait_for(timeout=30_000)
    status = live.locator(".response-col_status").inner_text().strip()
    text = live.locator(".response-col_description pre").first.inner_text()
    return status, json.loads(text)


def test_authorize_then_try_a_list_route_and_the_predict_route(
    page: Any, docs_server: LiveServer, model_files: Any
) -> None:
    models = _operation(page, "get", "/api/v1/models")
    status, body = _execute(models)
    assert status == "401", "without a token the server says so"
    assert body["error"]["code"] == "unauthenticated"
    assert page.locator("button.authorize").is_visible(), "the document declares bearer auth"
    _authorize(page, docs_server.admin_token)
    status, body = _execute(models)
    assert status == "200"
    assert [m["name"] for m in body] == ["m"]

    predict = _operation(page, "post", "/api/v1/deployments/{name}/predict")
    predict.locator("tr[data-param-name='name'] input").fill("dep")
    row = [round(float(v), 4) for v in model_files.x[0]]
    predict.locator("textarea.body-param__text").fill(json.dumps({"inputs": [row]}))
    status, body = _execute(predict)
    assert status == "200"
    assert body["deployment"] == "dep" and body["model"] == "m" and body["version"] == 1
    assert body["predictions"] == [int(model_files.y[0])]
    assert not [e for e in page.console_errors if "Content Security Policy" in e]
