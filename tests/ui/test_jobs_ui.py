"""The web UI over jobs: a library job from its generated form, live logs and charts, cancel."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from conftest import LiveServer
from ui.conftest import Browse, api, serve, until

SCRIPTS = Path(__file__).parent / "scripts"
HOSTILE = "<img src=x onerror=window.__pwned=1>"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    yield from serve(tmp_path_factory, jobs=True, job_slots=2.0)


def log_lines(page: object) -> list[str]:
    return page.locator("[data-testid=logs] .line").all_inner_texts()  # type: ignore[attr-defined,no-any-return]


def chart_points(page: object, metric: str) -> int:
    found = page.get_attribute(f".chart[data-metric='{metric}']", "data-points")  # type: ignore[attr-defined]
    return int(found or 0)


def test_a_library_job_from_its_form_422_at_the_field_then_live_logs_chart_and_version(
    server: LiveServer, browse: Callable[[LiveServer], Browse]
) -> None:
    b = browse(server)
    page = b.sign_in()
    b.open("/library")
    page.click("tr[data-entry='classical.random_forest'] >> a.button:has-text('Train')")
    page.wait_for_selector("form.params")
    assert page.input_value("input[name=dataset]") == "wine"  # the entry's default
    assert page.input_value("input[name=n_estimators]") == "100"  # the schema's default
    assert "≥ 1" in page.inner_text("[data-field=n_estimators]")  # its bounds
    page.fill("input[name=n_estimators]", "0")  # out of bounds: the server says 422
    page.fill("input[name=trees_per_step]", "5")
    page.fill("input[name=model_name]", "rf-ui")
    page.click("button:has-text('Submit job')")
    error = page.wait_for_selector("[data-field=n_estimators] .field-error")
    assert "greater than or equal to 1" in error.inner_text()
    assert page.locator("[data-field=trees_per_step] .field-error").count() == 0
    b.shot("library-form-422")

    page.fill("input[name=n_estimators]", "40")
    page.click("button:has-text('Submit job')")
    page.wait_for_url("**/jobs/*")
    until(lambda: page.inner_text("[data-testid=job-state]") == "succeeded", 90, "the job")
    until(lambda: any("step 8" in line for line in log_lines(page)), 10, "the last log line")
    until(lambda: chart_points(page, "accuracy") == 8, 10, "8 points on the accuracy chart")
    assert page.locator(".chart canvas").count() >= 1
    b.shot("job-library")
    page.click("dd >> a:has-text('rf-ui')")  # the registered model
    page.wait_for_selector("tr[data-version='1']")
    assert "job" in page.inner_text("tr[data-version='1']")  # its lineage links the job
    b.shot("model-from-job")


def test_logs_and_chart_follow_live_a_hostile_line_is_text_and_cancel_stops_it(
    server: LiveServer, browse: Callable[[LiveServer], Browse]
) -> None:
    with api(server) as http:
        spec = {"kind": "script", "entry": "ticker.py:main"}
        made = http.post(
            "/api/v1/jobs/script",
            files={"source": ("ticker.py", (SCRIPTS / "ticker.py").read_bytes())},
            data={"spec": json.dumps(spec)},
        )
        assert made.status_code == 201, made.text
    job_id = made.json()["id"]
    b = browse(server)
    page = b.sign_in()
    # The page's first log connection drops after three events (what the server sends
    # first: the attempt, the hostile line, tick 1); the page reconnects by itself.
    connections = []

    def drop_the_first(route: Any) -> None:
        connections.append(route.request.url)
        if len(connections) > 1:
            route.continue_()
            return
        first = [("attempt", '{"attempt": 1}'), ("log", HOSTILE), ("log", "tick 1")]
        body = "".join(f"event: {e}\ndata: {d}\n\n" for e, d in first)
        route.fulfill(status=200, headers={"Content-Type": "text/event-stream"}, body=body)

    page.route(f"**/api/v1/jobs/{job_id}/logs?follow=true", drop_the_first)
    b.open("/jobs")
    page.click(f"a[href='/jobs/{job_id}']")
    until(lambda: "tick 2" in log_lines(page), 60, "tick 2 in the log")
    assert page.inner_text("[data-testid=job-state]") == "running"
    seen = len(log_lines(page))
    points = chart_points(page, "loss")
    # Still running and still on the same page: more lines and points arrive by themselves.
    until(lambda: len(log_lines(page)) >= seen + 3, 20, "new log lines")
    until(lambda: chart_points(page, "loss") > points, 20, "new chart points")
    lines = log_lines(page)
    assert len(connections) >= 2  # it did reconnect
    assert HOSTILE in lines
    ticks = [line for line in lines if line.startswith("tick ")]
    # Resumed after the drop: every tick once, in order, none missing.
    assert ticks == [f"tick {n}" for n in range(1, len(ticks) + 1)]
    assert len(lines) == len(set(lines))
    assert page.locator("main img").count() == 0
    assert page.evaluate("window.__pwned") is None
    b.shot("job-live")

    page.click("button:has-text('Cancel')")
    until(lambda: page.inner_text("[data-testid=job-state]") == "cancelled", 30, "cancelled")
    page.wait_for_selector("button:has-text('Retry')")
    with api(server) as http:
        assert http.get(f"/api/v1/jobs/{job_id}").json()["state"] == "cancelled"
    b.shot("job-cancelled")


def test_the_jobs_list_pages_on_the_server_by_keyset(server: LiveServer) -> None:
    with api(server) as http:
        for _ in range(5):
            spec = {"kind": "train", "entry": "nope.unknown"}
            http.post("/api/v1/jobs", json=spec)  # refused: queues nothing
        ids = [j["id"] for j in http.get("/api/v1/jobs", params={"limit": 1000}).json()]
        first = http.get("/api/v1/jobs", params={"limit": 1})
        assert [j["id"] for j in first.json()] == ids[:1]
        cursor = first.headers["X-Next-Cursor"]
        second = http.get("/api/v1/jobs", params={"limit": 1, "after": cursor})
        assert [j["id"] for j in second.json()] == ids[1:2]
        last = http.get("/api/v1/jobs", params={"limit": 1000})
        assert "X-Next-Cursor" not in last.headers
        assert http.get("/api/v1/jobs", params={"after": 0}).status_code == 422
