"""The web UI over models and deployments: sign in, drop a model, deploy, try it, split, roles."""

from __future__ import annotations

import base64
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from conftest import LiveServer, ModelFiles
from ui.conftest import Browse, api, serve, until

HOSTILE = "<img src=x onerror=window.__pwned=1>"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    yield from serve(tmp_path_factory)


def upload(server: LiveServer, model: str, files: ModelFiles) -> dict[str, Any]:
    with api(server) as http:
        response = http.post(
            f"/api/v1/models/{model}/versions",
            files={"file": ("model.onnx", files.onnx.read_bytes())},
        )
    assert response.status_code == 201, response.text
    version: dict[str, Any] = response.json()
    return version


def drop_file(page: Any, selector: str, name: str, data: bytes) -> None:
    """Drag a file onto ``selector`` as a user would: a real DataTransfer and a drop event."""
    transfer = page.evaluate_handle(
        """([b64, name]) => {
            const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
            const dt = new DataTransfer();
            dt.items.add(new File([bytes], name));
            return dt;
        }""",
        [base64.b64encode(data).decode(), name],
    )
    page.dispatch_event(selector, "dragover", {"dataTransfer": transfer})
    page.dispatch_event(selector, "drop", {"dataTransfer": transfer})


def test_sign_in_keeps_the_token_out_of_the_url_and_signs_out(
    server: LiveServer, browse: Callable[[LiveServer], Browse]
) -> None:
    b = browse(server)
    page = b.page
    page.goto(server.url + "/jobs")
    b.shot("sign-in")
    page.fill("input[name=token]", "not-a-token")
    page.click("button[type=submit]")
    assert "401" in page.inner_text(".signin .error")
    b.sign_in()
    assert "admin" in page.inner_text("nav .who")
    assert server.admin_token not in page.url
    page.reload()  # the token lives in sessionStorage: a reload stays signed in
    page.wait_for_selector("nav .who")
    page.click("text=Sign out")
    page.wait_for_selector("input[name=token]")
    assert page.evaluate("sessionStorage.length") == 0


def test_drop_a_model_deploy_in_two_clicks_try_it_and_see_the_count_move(
    server: LiveServer, browse: Callable[[LiveServer], Browse], model_files: ModelFiles
) -> None:
    b = browse(server)
    page = b.sign_in()
    b.open("/models")
    page.fill("input[name=upload-name]", "dropped")
    # Record that a progress bar showed while the bytes went up.
    page.evaluate(
        """() => new MutationObserver(() => {
            if (document.querySelector("progress.bar")) window.__sawProgress = true;
        }).observe(document.body, {childList: true, subtree: true})"""
    )
    drop_file(page, "[data-testid=dropzone]", "model.onnx", model_files.onnx.read_bytes())
    page.wait_for_url("**/models/dropped")
    page.wait_for_selector("tr[data-version='1']")
    assert page.evaluate("window.__sawProgress") is True
    assert "FP32" in page.inner_text("tr[data-version='1'] .sig")
    b.shot("model")

    page.click("tr[data-version='1'] >> text=Deploy")  # click 1
    page.click("text=Deploy version 1 now")  # click 2
    page.wait_for_url("**/deployments/*")
    page.wait_for_selector("[data-testid=request-count]")
    assert page.inner_text("[data-testid=request-count]") == "0"
    # Prefilled from the signature: one row of its 30 features.
    until(
        lambda: page.input_value("textarea[name=request]").startswith('{"inputs":[[0,0,'),
        10,
        "the try-it box to be prefilled from the signature",
    )

    def answered() -> bool:
        page.click(".tryit button[type=submit]")
        page.wait_for_selector(".answer")
        return "predictions" in page.inner_text(".answer")

    until(answered, 60, "the deployment to answer the try-it request")
    until(
        lambda: page.inner_text("[data-testid=request-count]") not in ("", "0"),
        15,
        "the request count to move",
    )
    b.shot("deployment")


def test_edit_a_canary_split(
    server: LiveServer, browse: Callable[[LiveServer], Browse], model_files: ModelFiles
) -> None:
    upload(server, "canary", model_files)
    upload(server, "canary", model_files)
    with api(server) as http:
        made = http.post("/api/v1/deployments", json={"model": "canary", "version": 1})
        assert made.status_code == 201, made.text
    b = browse(server)
    page = b.sign_in()
    b.open("/deployments/canary")
    page.wait_for_selector("select[name=version-0] option[value='2']", state="attached")
    page.click("text=Add a canary route")
    page.select_option("select[name=version-1]", "2")
    page.fill("input[name=weight-0]", "90")
    page.fill("input[name=weight-1]", "10")
    page.click("text=Save split")
    page.wait_for_selector(".traffic .ok")
    b.shot("deployment-canary")
    with api(server) as http:
        routes = http.get("/api/v1/deployments/canary").json()["routes"]
    assert [(r["version"], r["weight"]) for r in routes] == [(1, 90), (2, 10)]


def test_a_viewer_sees_no_write_buttons_and_a_forged_write_is_refused(
    server: LiveServer, browse: Callable[[LiveServer], Browse], model_files: ModelFiles
) -> None:
    upload(server, "viewed", model_files)
    with api(server) as http:
        made = http.post("/api/v1/tokens", json={"name": "looker", "role": "viewer"})
        http.post("/api/v1/deployments", json={"model": "viewed", "version": 1})
    secret = made.json()["secret"]
    b = browse(server)
    page = b.sign_in(secret)
    assert "viewer" in page.inner_text("nav .who")
    for path, write in [
        ("/models", "[data-testid=dropzone]"),
        ("/datasets", "[data-testid=dropzone]"),
        ("/models/viewed", "button:has-text('Deploy')"),
        ("/models/viewed", "button:has-text('Move alias')"),
        ("/deployments/viewed", "button:has-text('Save split')"),
        ("/library", "a.button:has-text('Train')"),
        ("/admin", "button:has-text('Create token')"),
    ]:
        b.open(path)
        page.wait_for_selector("main table, main p")  # the page's first load has landed
        page.wait_for_timeout(300)
        assert page.locator(write).count() == 0, f"{path} shows {write} to a viewer"
    b.shot("viewer-model")
    forged = page.evaluate(
        """async (token) => (await fetch("/api/v1/deployments", {
            method: "POST",
            headers: {"Authorization": "Bearer " + token, "Content-Type": "application/json"},
            body: JSON.stringify({model: "viewed", version: 1, name: "forged"}),
        })).status""",
        secret,
    )
    assert forged == 403


def test_a_hostile_tag_and_description_render_as_text(
    server: LiveServer, browse: Callable[[LiveServer], Browse], model_files: ModelFiles
) -> None:
    upload(server, "hostile", model_files)
    with api(server) as http:
        patched = http.patch("/api/v1/models/hostile", json={"tags": {"note": HOSTILE}})
        assert patched.status_code == 200, patched.text
        http.patch("/api/v1/models/hostile/versions/1", json={"tags": {"x": HOSTILE}})
    b = browse(server)
    page = b.sign_in()
    b.open("/models")
    page.wait_for_selector("text=hostile")
    assert HOSTILE in page.inner_text("main")
    b.open("/models/hostile")
    page.wait_for_selector("tr[data-version='1']")
    assert HOSTILE in page.inner_text("main")
    assert page.locator("main img").count() == 0
    assert page.evaluate("window.__pwned") is None


def test_every_page_renders_under_the_csp_and_asks_only_the_server(
    server: LiveServer, browse: Callable[[LiveServer], Browse]
) -> None:
    with api(server) as http:
        assert http.post("/api/v1/zoo/datasets/iris").status_code == 201
    b = browse(server)
    page = b.sign_in()
    for path, name in [
        ("/", "overview"),
        ("/datasets/iris", "dataset"),
        ("/models", "models"),
        ("/deployments", "deployments"),
        ("/jobs", "jobs"),
        ("/library", "library"),
        ("/library/classical.logistic_regression", "library-form"),
        ("/datasets", "datasets"),
        ("/monitoring", "monitoring"),
        ("/admin", "admin"),
    ]:
        b.open(path)
        page.wait_for_timeout(400)
        assert page.locator(".error").count() == 0, page.inner_text("main")
        b.shot(name)
    b.open("/datasets/iris")
    page.wait_for_selector("table.profile .bar-col")
    assert page.locator("table.profile tbody tr").count() == 5  # iris: 4 features and the label
    b.open("/admin")
    page.fill("input[name=token-name]", "ci-bot")
    page.click("text=Create token")
    secret = page.inner_text("[data-testid=secret]")
    assert len(secret) > 20
    page.click("text=I have kept it")
    assert page.locator("[data-testid=secret]").count() == 0
    assert secret not in page.inner_text("main")
    # The API, not the UI, answers a path that is no page of the app.
    response = page.request.get(server.url + "/api/v1/nothing-here")
    assert response.status == 404
