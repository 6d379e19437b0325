"""Jobs on the local executor through the real API: the issue's must-show behaviours."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import httpx
import pytest

from conftest import LiveServer
from jobs.conftest import host_pid, pid_alive, submit_script, upload_iris, wait_for

pytestmark = pytest.mark.backend("postgresql")  # slow end to end: one backend (tests/conftest.py)


def _follow(api: httpx.Client, job_id: int) -> tuple[list[str], dict[str, object]]:
    """Read the job's live SSE log stream to its end: the lines, and the final job."""
    lines: list[str] = []
    with api.stream("GET", f"/api/v1/jobs/{job_id}/logs", params={"follow": "true"}) as resp:
        assert resp.headers["content-type"].startswith("text/event-stream")
        event = ""
        for raw in resp.iter_lines():
            if raw.startswith("event: "):
                event = raw[len("event: ") :]
            elif raw.startswith("data: "):
                data = raw[len("data: ") :]
                if event == "log":
                    lines.append(data)
                elif event == "end":
                    return lines, json.loads(data)
    raise AssertionError(f"the stream ended without an end event; lines: {lines}")


def test_train_streams_logs_registers_with_lineage_and_evaluation_attaches_metrics(
    api: httpx.Client, tmp_path: Path
) -> None:
    upload_iris(api, tmp_path)
    spec = {
        "kind": "train",
        "entry": "sklearn.sgd_classifier",
        "dataset": "iris",
        "params": {"epochs": 8, "learning_rate": 0.05, "model_name": "iris-sgd"},
    }
    job = api.post("/api/v1/jobs", json=spec).json()
    lines, final = _follow(api, job["id"])
    assert final["state"] == "succeeded", final
    assert "epoch 1/8" in lines[0] and any("epoch 8/8" in line for line in lines)
    accuracy = [
        m for m in api.get(f"/api/v1/jobs/{job['id']}/metrics").json() if m["name"] == "accuracy"
    ]
    assert [m["step"] for m in accuracy] == list(range(1, 9))
    version = api.get("/api/v1/models/iris-sgd/versions/1").json()
    assert version["lineage"] == {"job_id": str(job["id"]), "dataset": "iris", "dataset_version": 1}
    assert version["flavor"] == "sklearn"

    evaluation = api.post(
        "/api/v1/jobs",
        json={
            "kind": "evaluate",
            "entry": "evaluate",
            "dataset": "iris",
            "params": {"model": "iris-sgd", "version": "1"},
        },
    ).json()
    done = wait_for(api, evaluation["id"])
    assert done["state"] == "succeeded", done
    reports = api.get("/api/v1/models/iris-sgd/versions/1/evaluations").json()
    assert len(reports) == 1 and reports[0]["job_id"] == evaluation["id"]
    report = reports[0]
    assert report["task"] == "classification" and report["n_rows"] == 150
    assert report["metrics"]["accuracy"] >= 0.8
    matrix = report["details"]["confusion_matrix"]["matrix"]
    assert sum(map(sum, matrix)) == 150
    metrics = api.get("/api/v1/models/iris-sgd/versions/1").json()["metrics"]
    assert metrics["accuracy"] == report["metrics"]["accuracy"]
    assert {"f1", "precision", "recall", "roc_auc"} <= set(metrics)
    compared = api.get(
        "/api/v1/models/iris-sgd/compare", params={"versions": "1", "dataset": "iris"}
    ).json()
    assert compared["table"]["accuracy"] == {"iris-sgd:v1": report["metrics"]["accuracy"]}


def test_kill_9_of_a_job_resumes_from_its_checkpoint_on_attempt_2(api: httpx.Client) -> None:
    job = submit_script(api, "resumable.py", params={"steps": 6, "pause": 0.4})
    running = wait_for(api, job["id"], lambda j: len(j["outputs"]) >= 2 and "pid_1" in j["outputs"])
    wait_for(
        api, job["id"], lambda j: len(api.get(f"/api/v1/jobs/{j['id']}/checkpoints").json()) >= 2
    )
    os.kill(host_pid(running["outputs"]["pid_1"]), signal.SIGKILL)
    done = wait_for(api, job["id"])
    assert done["state"] == "succeeded", done
    assert done["attempt"] == 2
    assert done["retries_used"] == 0, "a killed process is the infrastructure's failure"
    assert done["outputs"]["start_2"] >= 2, "attempt 2 resumed from the checkpoint"
    steps = api.get(f"/api/v1/jobs/{job['id']}/metrics", params={"name": "step"}).json()
    second = [m["step"] for m in steps if m["attempt"] == 2]
    assert second[0] == done["outputs"]["start_2"] + 1 and second[-1] == 6
    events = api.get(f"/api/v1/jobs/{job['id']}/events").json()
    assert any("SIGKILL" in (e["reason"] or "") for e in events), events
    assert "starts after step" in api.get(f"/api/v1/jobs/{job['id']}/logs").text


def test_a_paused_worker_past_its_lease_cannot_write_late(settings: object, tmp_path: Path) -> None:
    from conftest import start_server
    from jobs.conftest import job_settings

    server = start_server(job_settings(settings, job_lease_s=5.0))  # type: ignore[arg-type]
    live: LiveServer = next(server)
    try:
        with httpx.Client(
            base_url=live.url, headers={"Authorization": f"Bearer {live.admin_token}"}, timeout=60
        ) as api:
            job = submit_script(api, "fenced.py", params={"hold": 15.0})
            first = wait_for(api, job["id"], lambda j: "pid_1" in j["outputs"])
            pid = host_pid(first["outputs"]["pid_1"])
            os.kill(pid, signal.SIGSTOP)
            try:
                done = wait_for(api, job["id"])
            finally:
                os.kill(pid, signal.SIGCONT)
            deadline = time.monotonic() + 20
            while pid_alive(pid) and time.monotonic() < deadline:
                time.sleep(0.05)
            assert not pid_alive(pid), "the late attempt stopped itself"
            assert done["state"] == "succeeded" and done["attempt"] == 2, done
            assert done["outputs"]["attempt"] == 2
            versions = api.get("/api/v1/models/fenced/versions").json()
            assert [v["version"] for v in versions] == [1]
            assert versions[0]["lineage"]["job_id"] == str(job["id"])
            events = api.get(f"/api/v1/jobs/{job['id']}/events").json()
            assert any("lost its lease" in (e["reason"] or "") for e in events), events
            log_1 = ""
            while "refused" not in log_1 and time.monotonic() < deadline:
                log_1 = api.get(f"/api/v1/jobs/{job['id']}/logs", params={"attempt": 1}).text
                time.sleep(0.1)
            assert "refused" in log_1, log_1
            assert "registered" not in log_1
    finally:
        server.close()


def test_cancel_ends_the_process_tree_and_removes_scratch(api: httpx.Client) -> None:
    job = submit_script(api, "sleeper.py", params={"seconds": 60})
    running = wait_for(api, job["id"], lambda j: "child_pid" in j["outputs"])
    outputs = running["outputs"]
    pid, child_pid = host_pid(outputs["pid"]), host_pid(outputs["child_pid"])
    assert Path(outputs["scratch"]).is_dir()
    started = time.monotonic()
    assert api.post(f"/api/v1/jobs/{job['id']}/cancel").status_code == 200
    done = wait_for(api, job["id"], timeout=5)
    while (pid_alive(pid) or pid_alive(child_pid)) and (time.monotonic() - started < 5):
        time.sleep(0.05)
    assert done["state"] == "cancelled"
    assert not pid_alive(pid) and not pid_alive(child_pid)
    assert not Path(outputs["scratch"]).exists()
    assert time.monotonic() - started < 5
    assert api.post(f"/api/v1/jobs/{job['id']}/cancel").status_code == 200  # idempotent


def test_two_slots_run_three_one_cpu_jobs_two_at_a_time(api: httpx.Client) -> None:
    jobs = [
        submit_script(api, "sleeper.py", params={"seconds": 1}, resources={"cpu": 1})
        for _ in range(3)
    ]
    done = [wait_for(api, j["id"]) for j in jobs]
    assert all(j["state"] == "succeeded" for j in done), done
    spans = sorted((j["started_at"], j["finished_at"]) for j in done)
    for start, _ in spans:
        overlapping = sum(1 for s, f in spans if s <= start < f)
        assert overlapping <= 2, spans
    assert spans[2][0] >= min(spans[0][1], spans[1][1]), "the third waited for a free slot"


def test_a_gpu_job_on_a_node_without_one_waits_with_a_reason(api: httpx.Client) -> None:
    job = api.post(
        "/api/v1/jobs", json={"kind": "train", "entry": "noop", "resources": {"gpu": 1}}
    ).json()
    waiting = wait_for(api, job["id"], lambda j: j["reason"] is not None, timeout=10)
    assert waiting["state"] == "queued"
    assert "GPU" in waiting["reason"] and "no node has one" in waiting["reason"]
    time.sleep(1.0)
    assert api.get(f"/api/v1/jobs/{job['id']}").json()["state"] == "queued"
    assert api.post(f"/api/v1/jobs/{job['id']}/cancel").json()["state"] == "cancelled"


def test_bad_submissions_are_refused_and_nothing_is_queued(
    api: httpx.Client, tmp_path: Path
) -> None:
    upload_iris(api, tmp_path)
    cases = [
        ({"kind": "train", "entry": "no.such.entry"}, 422, "unknown entry 'no.such.entry'"),
        (
            {
                "kind": "train",
                "entry": "sklearn.sgd_classifier",
                "dataset": "iris",
                "params": {"learning_rate": -0.1},
            },
            422,
            "params.learning_rate",
        ),
        (
            {
                "kind": "train",
                "entry": "sklearn.sgd_classifier",
                "dataset": "iris",
                "params": {"epochs": "many"},
            },
            422,
            "params.epochs",
        ),
        (
            {
                "kind": "train",
                "entry": "sklearn.sgd_classifier",
                "dataset": "iris",
                "params": {"depth": 3},
            },
            422,
            "params.depth",
        ),
        ({"kind": "train", "entry": "sklearn.sgd_classifier", "dataset": "nope"}, 404, "'nope'"),
        ({"kind": "train", "entry": "sklearn.sgd_classifier"}, 422, "needs a dataset"),
        ({"kind": "evaluate", "entry": "noop"}, 422, "kind"),
        ({"kind": "train", "entry": "noop", "resources": {"cpu": -1}}, 422, "cpu"),
    ]
    for body, status, needle in cases:
        response = api.post("/api/v1/jobs", json=body)
        assert response.status_code == status, (body, response.text)
        assert needle in response.json()["error"]["message"], (body, response.text)
    assert api.get("/api/v1/jobs").json() == []


def test_script_uploads_are_checked(api: httpx.Client, jobs_server: LiveServer) -> None:
    import io
    import tarfile

    bad_entry = api.post(
        "/api/v1/jobs/script",
        files={"source": ("t.py", b"def main(p):\n    pass\n")},
        data={"spec": json.dumps({"kind": "script", "entry": "os.system('x')"})},
    )
    assert bad_entry.status_code == 422 and "entry" in bad_entry.json()["error"]["message"]
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        info = tarfile.TarInfo("../escape.py")
        info.size = 4
        tar.addfile(info, io.BytesIO(b"x=1\n"))
    slip = api.post(
        "/api/v1/jobs/script",
        files={"source": ("code.tar.gz", buffer.getvalue())},
        data={"spec": json.dumps({"kind": "script", "entry": "escape:main"})},
    )
    assert slip.status_code == 422 and "unsafe" in slip.json()["error"]["message"]
    for name, junk in (("code.zip", b"PKjunk"), ("code.tar.gz", b"\x1f\x8bjunk")):
        broken = api.post(
            "/api/v1/jobs/script",
            files={"source": (name, junk)},
            data={"spec": json.dumps({"kind": "script", "entry": "code:main"})},
        )
        assert broken.status_code == 422, broken.text
        assert "not a readable archive" in broken.json()["error"]["message"]
    editor = api.post(
        "/api/v1/tokens", json={"name": "ed", "role": "editor", "project": "default"}
    ).json()["secret"]
    as_editor = api.post(
        "/api/v1/jobs/script",
        headers={"Authorization": f"Bearer {editor}"},
        files={"source": ("t.py", b"def main(p):\n    pass\n")},
        data={"spec": json.dumps({"kind": "script", "entry": "t.py:main"})},
    )
    assert as_editor.status_code == 403
    assert api.get("/api/v1/jobs").json() == []


def test_a_failing_script_fails_with_its_error_after_its_retries(api: httpx.Client) -> None:
    job = submit_script(api, "failing.py", params={"column": "age"}, max_retries=1)
    done = wait_for(api, job["id"], timeout=30)
    assert done["state"] == "failed", done
    assert "ValueError: column 'age' has no numbers" in done["reason"]
    assert done["attempt"] == 2 and done["retries_used"] == 1
    assert "Traceback" in api.get(f"/api/v1/jobs/{job['id']}/logs").text
    retried = api.post(f"/api/v1/jobs/{job['id']}/retry").json()
    assert retried["state"] in ("queued", "running")
