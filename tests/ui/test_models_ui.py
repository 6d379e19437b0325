"""The web UI over models and deployments: sign in, drop a model, deploy, try it, split, roles."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from conftest import LiveServer, ModelFiles
from ui.conftest import Browse, api, serve, until

HOSTILE = "<img src=x onerror=window.__pwned=1>"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    yield from serve(
        tmp_path_factory,
        # A rule whose name is hostile (the alerts page shows it), and one deployment
        # ("logged") whose every prediction is logged, for the prediction-log browser.
        alert_rules=[{"name": HOSTILE, "metric": "p99_latency_s", "threshold": 5}],
        prediction_log_rates={"logged": 1.0, "churn": 1.0},
        prediction_log_flush_s=0.2,
    )


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
    # Each replica says where its model runs (no GPU asked for: the CPU).
    until(
        lambda: page.inner_text("[data-testid=replica-device]") == "cpu",
        15,
        "the replica's device",
    )
    until(
        lambda: page.inner_text("[data-testid=request-count]") not in ("", "0"),
        15,
        "the request count to move",
    )

    def latency_drawn() -> bool:  # p50/p99 of the requests between two scrapes of /metrics
        page.click(".tryit button[type=submit]")
        return "ms" in page.inner_text("[data-testid=latency]")

    until(latency_drawn, 30, "the live p50/p99 latency")
    assert page.locator(".chart[data-chart='latency (ms)'] canvas").count() == 1
    b.shot("deployment")
    b.open("/")  # the overview's deployments carry the same live figures
    until(
        lambda: page.inner_text("tr:has(a:text-is('dropped')) td.requests") not in ("…", "0"),
        10,
        "the overview's request count",
    )


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
    for path, name in [
        ("/pipelines", "pipelines"),
        ("/monitoring/nodes", "monitoring-nodes"),
        ("/monitoring/drift", "monitoring-drift"),
        ("/monitoring/alerts", "monitoring-alerts"),
        ("/monitoring/predictions", "monitoring-predictions"),
        ("/monitoring/logs", "monitoring-logs"),
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


def system_log_line(server: LiveServer, message: str) -> None:
    """Append one record to the server's system log file, as its JSON log handler would."""
    folder = server.settings.system_log_dir
    folder.mkdir(parents=True, exist_ok=True)
    now = datetime.now(UTC)
    record = {"time": now.isoformat(), "level": "WARNING", "component": "aimass.test",
              "node": "ui-test", "pid": 1, "request_id": "req-1", "message": message}  # fmt: skip
    with (folder / f"{now.date().isoformat()}.jsonl").open("a") as out:
        out.write(json.dumps(record) + "\n")


def test_monitoring_shows_nodes_alerts_and_logs_live_with_hostile_text_as_text(
    server: LiveServer, browse: Callable[[LiveServer], Browse]
) -> None:
    from aimass.monitoring.events import record_event
    from aimass.store.db import Database

    system_log_line(server, f"first {HOSTILE}")
    alert = {"status": "firing", "labels": {"alertname": HOSTILE, "metric": "p99_latency_s",
             "subject": HOSTILE, "severity": "warning"}, "annotations": {"summary": HOSTILE},
             "startsAt": "2026-01-01T00:00:00Z", "endsAt": None}  # fmt: skip
    slow = {**alert, "labels": {**alert["labels"], "alertname": "Slow", "subject": "api"}}
    db = Database(server.settings.database_url)
    with db.session() as session:
        record_event(session, project="default", kind="alert", subject=HOSTILE,
                     message=f"{HOSTILE} firing", details=alert)  # fmt: skip
        # "Slow" fired, then resolved: the page shows its latest state only.
        for status in ("firing", "resolved"):
            record_event(session, project="default", kind="alert", subject="api",
                         message=f"Slow {status}", details={**slow, "status": status})  # fmt: skip
    db.engine.dispose()
    b = browse(server)
    page = b.sign_in()
    # The overview lists this node (its monitor samples every few seconds) with CPU and memory.
    page.wait_for_selector("table.nodes tr[data-node] td.cpu")
    assert "%" in page.inner_text("table.nodes td.cpu")
    assert "iB" in page.inner_text("table.nodes td.memory")
    b.shot("overview-nodes")
    b.open("/monitoring/nodes")
    page.wait_for_selector(".chart[data-chart='CPU and memory (%)'] canvas")
    b.open("/monitoring/alerts")
    page.wait_for_selector("table.alerts tr[data-status=firing]")
    page.wait_for_selector("table.rules")
    assert page.inner_text("table.alerts").count(HOSTILE) >= 2  # rule, subject, summary
    slow_rows = page.locator("table.alerts tr:has-text('Slow')")
    assert slow_rows.count() == 1 and slow_rows.get_attribute("data-status") == "resolved"
    assert HOSTILE in page.inner_text("table.rules")
    assert HOSTILE in page.inner_text("table.events")
    b.shot("monitoring-alerts-hostile")
    b.open("/monitoring/logs")
    page.wait_for_selector("td.message:has-text('first')")
    assert HOSTILE in page.inner_text("table.syslog")
    system_log_line(server, f"second {HOSTILE}")  # followed live: shows without a reload
    page.wait_for_selector("td.message:has-text('second')", timeout=10_000)
    page.fill("input[name=log-text]", "second")
    page.press("input[name=log-text]", "Tab")  # a change event: the search runs
    until(lambda: page.locator("table.syslog tbody tr").count() == 1, 10, "the search to filter")
    b.shot("monitoring-logs")
    assert page.locator("main img").count() == 0
    assert page.evaluate("window.__pwned") is None


def test_the_prediction_log_browser_pages_through_logged_requests(
    server: LiveServer, browse: Callable[[LiveServer], Browse], model_files: ModelFiles
) -> None:
    upload(server, "logged", model_files)
    with api(server) as http:
        made = http.post("/api/v1/deployments", json={"model": "logged", "version": 1})
        assert made.status_code == 201, made.text

        def answered(rows: int) -> bool:
            body = {"inputs": [[0.0] * 30] * rows}
            return http.post("/api/v1/deployments/logged/predict", json=body).status_code == 200

        until(lambda: answered(1), 60, "the deployment to answer")
        assert answered(59)  # one request of 59 rows: each row is a logged record

        def logged() -> int:
            page_ = http.get("/api/v1/deployments/logged/predictions", params={"limit": 1})
            return page_.json()["total"] >= 60 if page_.is_success else 0

        until(logged, 20, "the 60 predictions to be logged")
    b = browse(server)
    page = b.sign_in()
    b.open("/monitoring/predictions?deployment=logged")
    page.wait_for_selector("table.predictions tbody tr")
    assert page.locator("table.predictions tbody tr").count() == 50
    first_page = set(page.locator("table.predictions td.name").all_inner_texts())
    page.click("text=Next")
    until(lambda: page.locator("table.predictions tbody tr").count() == 10, 10, "page two")
    second_page = set(page.locator("table.predictions td.name").all_inner_texts())
    assert not first_page & second_page  # no row shown twice
    assert len(first_page | second_page) == 60
    page.click("text=Previous")
    until(lambda: page.locator("table.predictions tbody tr").count() == 50, 10, "page one again")
    b.shot("monitoring-predictions")


def test_a_pipeline_and_its_run_are_drawn_as_a_dag(
    server: LiveServer, browse: Callable[[LiveServer], Browse]
) -> None:
    alias = {"kind": "set_alias", "model": "none", "alias": "x", "version": 1}
    steps = [
        {"name": "prepare", "action": alias},
        {"name": "train_a", "action": alias, "needs": ["prepare"]},
        {"name": "train_b", "action": alias, "needs": ["prepare"]},
        {"name": "pick", "action": alias, "needs": ["train_a", "train_b"]},
    ]
    with api(server) as http:
        made = http.post("/api/v1/pipelines", json={"name": "diamond", "steps": steps})
        assert made.status_code == 201, made.text
        run = http.post("/api/v1/pipelines/diamond/runs")
        assert run.status_code == 201, run.text
    b = browse(server)
    page = b.sign_in()
    b.open("/pipelines/diamond")
    page.wait_for_selector("svg.dag g[data-step]")
    assert page.locator("svg.dag g[data-step]").count() == 4
    assert page.locator("svg.dag path").count() == 4  # prepare->a, prepare->b, a->pick, b->pick
    x = {
        s: page.locator(f"svg.dag g[data-step={s}]").bounding_box()["x"]
        for s in ("prepare", "train_a", "pick")
    }
    assert x["prepare"] < x["train_a"] < x["pick"]  # each step right of what it needs
    page.click(f"a[href='/pipelines/runs/{run.json()['id']}']")
    page.wait_for_selector("svg.dag g[data-step=pick][data-state]")
    states = page.locator("svg.dag g[data-step]").evaluate_all(
        "gs => gs.map((g) => g.getAttribute('data-state'))"
    )
    assert len(states) == 4 and all(states)
    b.shot("pipeline-run")


def test_export_a_bundle_and_import_it_under_a_new_name(
    server: LiveServer, browse: Callable[[LiveServer], Browse], model_files: ModelFiles
) -> None:
    upload(server, "bundled", model_files)
    b = browse(server)
    page = b.sign_in()
    b.open("/models/bundled")
    page.wait_for_selector("tr[data-version='1']")
    with page.expect_download() as download:
        page.click("tr[data-version='1'] >> text=Export")
    assert download.value.suggested_filename == "bundled-v1.aimass"
    data = Path(download.value.path()).read_bytes()
    assert len(data) > 1000
    b.open("/models")
    page.fill("[data-testid=bundle-import] input[name=upload-name]", "imported")
    drop_file(page, "[data-testid=bundle-import] [data-testid=dropzone]", "bundled-v1.aimass", data)
    page.wait_for_url("**/models/imported")
    page.wait_for_selector("tr[data-version='1']")
    with api(server) as http:
        version = http.get("/api/v1/models/imported/versions/1").json()
        original = http.get("/api/v1/models/bundled/versions/1").json()
    assert version["sha256"] == original["sha256"]


def test_the_drift_page_shows_the_shifted_feature_fired(
    server: LiveServer, browse: Callable[[LiveServer], Browse]
) -> None:
    import numpy as np
    import pandas as pd
    from skl2onnx import to_onnx
    from sklearn.linear_model import LogisticRegression

    features = ["tenure", "spend", "visits"]
    rng = np.random.default_rng(5)
    train = pd.DataFrame({f: rng.normal(0.0, 1.0, 1000) for f in features})
    train["target"] = (train["tenure"] + train["visits"] > 0).astype(int)
    x = train[features].to_numpy().astype(np.float32)
    onnx = to_onnx(LogisticRegression().fit(x, train["target"]), x[:1]).SerializeToString()
    live = pd.DataFrame({f: rng.normal(0.0, 1.0, 300) for f in features})
    live["spend"] += 2.0  # two standard deviations: the one feature that moved
    with api(server) as http:
        csv = train.to_csv(index=False).encode()
        data = http.post("/api/v1/datasets/churn-train/versions", files={"file": ("t.csv", csv)})
        assert data.status_code == 201, data.text
        made = http.post("/api/v1/models/churn/versions", files={"file": ("m.onnx", onnx)})
        assert made.status_code == 201, made.text
        # The reference: the version's training set (its inputs match its columns by position).
        tag = {"training_dataset": f"churn-train:{data.json()['version']}"}
        assert http.patch("/api/v1/models/churn/versions/1", json={"tags": tag}).is_success
        assert http.post("/api/v1/deployments", json={"model": "churn", "version": 1}).is_success

        def answered(rows: list[list[float]]) -> bool:
            reply = http.post("/api/v1/deployments/churn/predict", json={"inputs": rows})
            return reply.status_code == 200

        until(lambda: answered(live.iloc[:50].to_numpy().tolist()), 60, "the deployment")
        for start in range(50, 300, 50):
            assert answered(live.iloc[start : start + 50].to_numpy().tolist())

        def logged() -> bool:
            found = http.get("/api/v1/deployments/churn/predictions", params={"limit": 1})
            return found.is_success and found.json()["total"] >= 300

        until(logged, 20, "the 300 rows to be logged")
    b = browse(server)
    page = b.sign_in()
    b.open("/monitoring/drift?deployment=churn")
    page.wait_for_selector("table.drift tr[data-feature=spend]")
    shown = page.locator("table.drift tbody tr").evaluate_all(
        "rows => rows.map((r) => r.getAttribute('data-feature'))"
    )
    assert set(features) <= set(shown)
    assert page.inner_text("table.drift tr[data-feature=spend] td:last-child") == "yes"
    assert page.inner_text("main strong.error") == "Drifted: spend"  # and no other feature
    b.shot("monitoring-drift-churn")
