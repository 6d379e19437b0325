"""Script jobs run in every project: each runtime call names the job's project (issue 19)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sklearn.datasets import load_iris

from conftest import LiveServer
from jobs.conftest import SCRIPTS, wait_for

pytestmark = pytest.mark.backend("sqlite")  # slow end to end: one backend (tests/conftest.py)

PROJECT = "p2"


@pytest.fixture
def p2(jobs_server: LiveServer, api: httpx.Client) -> Iterator[httpx.Client]:
    """An editor token limited to project p2 (the global admin made both)."""
    assert api.post("/api/v1/projects", json={"name": PROJECT}).status_code == 201
    body = {"name": "p2-editor", "role": "editor", "project": PROJECT}
    secret = api.post("/api/v1/tokens", json=body).json()["secret"]
    with httpx.Client(
        base_url=jobs_server.url,
        headers={"Authorization": f"Bearer {secret}"},
        params={"project": PROJECT},
        timeout=60,
    ) as client:
        yield client


def test_a_script_job_in_another_project_reaches_every_runtime_route(
    api: httpx.Client, p2: httpx.Client, tmp_path: Path
) -> None:
    data = tmp_path / "iris.csv"
    load_iris(as_frame=True).frame.to_csv(data, index=False)
    with data.open("rb") as fh:
        answer = p2.post("/api/v1/datasets/iris/versions", files={"file": (data.name, fh)})
    assert answer.status_code == 201, answer.text
    script = SCRIPTS / "everywhere.py"
    spec = {"kind": "script", "entry": "everywhere.py:main", "dataset": "iris", "max_retries": 1}
    # Only a global admin submits code; the job still lives in p2, with a token for p2 only.
    submitted = api.post(
        "/api/v1/jobs/script",
        params={"project": PROJECT},
        files={"source": (script.name, script.read_bytes(), "text/x-python")},
        data={"spec": json.dumps(spec)},
    )
    assert submitted.status_code == 201, submitted.text
    job_id = submitted.json()["id"]
    done = wait_for(p2, job_id, timeout=120)
    log = p2.get(f"/api/v1/jobs/{job_id}/logs", params={"attempt": 2}).text
    assert done["state"] == "succeeded" and done["attempt"] == 2, (done, log)
    assert done["project"] == PROJECT
    assert done["outputs"]["resumed_from"] == "step-1"
    assert done["outputs"]["project"] == PROJECT
    assert done["outputs"]["params"] == {"rows": 150}
    metrics = p2.get(f"/api/v1/jobs/{job_id}/metrics").json()
    assert [(m["attempt"], m["step"]) for m in metrics] == [(1, 1), (2, 2)]
    assert [c["step"] for c in p2.get(f"/api/v1/jobs/{job_id}/checkpoints").json()] == [1]
    artifact = p2.get(f"/api/v1/jobs/{job_id}/artifacts/note.txt")
    assert artifact.status_code == 200 and artifact.text == f"{PROJECT}\n"
    version = p2.get("/api/v1/models/everywhere/versions/1").json()
    assert version["lineage"]["job_id"] == str(job_id)
    assert version["lineage"]["dataset"] == "iris"
    assert api.get("/api/v1/models/everywhere").status_code == 404, "nothing lands in default"
    events = p2.get(f"/api/v1/jobs/{job_id}/events").json()
    assert not any("lease" in (e["reason"] or "") for e in events), "heartbeats reached p2"

    evaluation = p2.post(
        "/api/v1/jobs",
        json={
            "kind": "evaluate",
            "entry": "evaluate",
            "dataset": "iris",
            "params": {"model": "everywhere", "version": "1"},
        },
    ).json()
    assert wait_for(p2, evaluation["id"], timeout=120)["state"] == "succeeded"
    reports = p2.get("/api/v1/models/everywhere/versions/1/evaluations").json()
    assert [r["job_id"] for r in reports] == [evaluation["id"]]


class _Recording(httpx.HTTPTransport):
    """The real HTTP transport, noting each request's URL on the way."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[httpx.URL] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.urls.append(request.url)
        return super().handle_request(request)


#: The runtime's calls that reach the server; a new one must be added to the test below.
SERVER_CALLS = {
    "log_metric",
    "log_metrics",
    "log_params",
    "set_outputs",
    "log_artifact",
    "save_checkpoint",
    "load_checkpoint",
    "download_source",
    "dataset_path",
    "load_dataset",
    "register_model",
}
LOCAL_ONLY = {"client", "checkpoint_step", "print"}


def test_every_runtime_call_names_the_jobs_project(
    live_server: LiveServer, http: httpx.Client, tmp_path: Path
) -> None:
    from sklearn.linear_model import LogisticRegression

    from aimass.auth.service import create_job_token
    from aimass.client import Client
    from aimass.jobs import service
    from aimass.runtime.context import JobContext
    from aimass.store.db import Database

    public = {n for n in vars(JobContext) if not n.startswith("_")}
    assert public == SERVER_CALLS | LOCAL_ONLY, "a new runtime call: test it below"
    assert http.post("/api/v1/projects", json={"name": PROJECT}).status_code == 201
    data = tmp_path / "iris.csv"
    load_iris(as_frame=True).frame.to_csv(data, index=False)
    with data.open("rb") as fh:
        http.post("/api/v1/datasets/iris/versions", params={"project": PROJECT}, files={"file": fh})
    spec = {"kind": "script", "entry": "everywhere.py:main", "dataset": "iris"}
    job = http.post(
        "/api/v1/jobs/script",
        params={"project": PROJECT},
        files={"source": ("everywhere.py", b"def main(params):\n    pass\n", "text/x-python")},
        data={"spec": json.dumps(spec)},
    ).json()  # the test server runs no scheduler: this test plays the attempt
    db = Database(live_server.settings.resolved_database_url)
    with db.session() as s:
        attempt = service.start_attempt(s, job["id"], "node-a", 60.0).attempt
        secret = create_job_token(s, job["id"], attempt, PROJECT)
    db.close()
    env = {
        "AIMASS_JOB_ID": str(job["id"]),
        "AIMASS_JOB_ATTEMPT": str(attempt),
        "AIMASS_PROJECT": PROJECT,
        "AIMASS_JOB_DATASET": "iris",
        "AIMASS_SCRATCH_DIR": str(tmp_path),
        "AIMASS_URL": live_server.url,
        "AIMASS_TOKEN": secret,
    }
    recording = _Recording()

    def context(**extra: str) -> JobContext:
        ctx = JobContext({**env, **extra})
        ctx.client = Client(url=live_server.url, token=secret, project=PROJECT, transport=recording)
        return ctx

    ctx = context()
    ctx.log_metric("loss", 0.5, step=1)
    ctx.log_metrics({"loss": 0.4, "f1": 0.9}, step=2)
    ctx.log_params({"C": 1.0})
    ctx.set_outputs(done=True)
    note = tmp_path / "note.txt"
    note.write_text("kept")
    ctx.log_artifact(note)
    ctx.save_checkpoint(b"state", step=2)
    resumed = context(AIMASS_CHECKPOINT=json.dumps({"step": 2}))
    assert resumed.load_checkpoint() == b"state"
    (tmp_path / "src").mkdir()
    assert ctx.download_source(tmp_path / "src").read_bytes().startswith(b"def main")
    assert ctx.dataset_path().is_file()
    frame = ctx.load_dataset()
    x, y = frame.drop(columns="target"), frame["target"]
    version = ctx.register_model("scoped", LogisticRegression(max_iter=500).fit(x, y))
    assert version.lineage.job_id == str(job["id"])
    ctx.client.close()
    resumed.client.close()

    assert len(recording.urls) >= len(SERVER_CALLS)
    for url in recording.urls:
        assert url.params.get("project") == PROJECT, url
    attempt_routes = {u.path.rsplit("/", 1)[-1] for u in recording.urls if "/attempts/" in u.path}
    assert {"metrics", "outputs", "note.txt", "checkpoint"} <= attempt_routes
    assert http.get("/api/v1/models/scoped").status_code == 404, "nothing lands in default"
    assert http.get("/api/v1/models/scoped", params={"project": PROJECT}).status_code == 200
