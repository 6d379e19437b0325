"""Tokens: per attempt, never forging a job's records, a last admin kept, recovery, revocation."""

from __future__ import annotations

import os
import stat
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
from typer.testing import CliRunner

from aimass.auth.service import create_job_token
from aimass.config import Settings
from aimass.jobs import service
from aimass.jobs.entities import JobCreate
from aimass.store.db import Database
from aimass.store.orm import utcnow
from conftest import LiveServer, start_server
from tests_support import upload

SCRIPT_ENTRIES: dict[str, Any] = {"script": None}


def _as(live_server: LiveServer, secret: str) -> httpx.Client:
    return httpx.Client(
        base_url=live_server.url, headers={"Authorization": f"Bearer {secret}"}, timeout=30
    )


def _queue(db: Database, project: str = "default") -> int:
    """A script job in the store (the test server runs no scheduler, so it stays put)."""
    spec = JobCreate(kind="script", entry="script", max_retries=0)
    with db.session() as s:
        return service.submit_job(s, project, spec, SCRIPT_ENTRIES).id


def _start(db: Database, job_id: int, project: str = "default") -> tuple[int, str]:
    """Start the job's next attempt and mint its token, as the scheduler does."""
    with db.session() as s:
        attempt = service.start_attempt(s, job_id, "node-a", 30.0).attempt
        return attempt, create_job_token(s, job_id, attempt, project)


def _supersede(db: Database, job_id: int) -> int:
    """The attempt's lease runs out and the next attempt starts (no token minted yet)."""
    with db.session() as s:
        assert service.expire_leases(s, utcnow() + timedelta(minutes=5)) == [job_id]
    with db.session() as s:
        return service.start_attempt(s, job_id, "node-b", 30.0).attempt


def test_a_superseded_attempts_token_cannot_write_as_its_successor(
    live_server: LiveServer, http: httpx.Client, db: Database, model_files: Any
) -> None:
    job_id = _queue(db)
    first, secret_1 = _start(db, job_id)
    second = _supersede(db, job_id)
    assert (first, second) == (1, 2)
    metrics = {"metrics": [{"name": "loss", "value": 9.0}]}
    with _as(live_server, secret_1) as late:
        forged = late.post(f"/api/v1/jobs/{job_id}/attempts/2/metrics", json=metrics)
        assert forged.status_code == 403, forged.text
        assert "attempt 1" in forged.json()["error"]["message"]
        # No job reference in the body: the server fills it in from the token and fences it.
        fenced = upload(late, "late", model_files.onnx, {}, expect=409)
        assert "no longer current" in fenced["error"]["message"]
        # Claiming the successor's attempt in the body changes nothing: the token says 1.
        claimed = {"job": {"id": job_id, "attempt": 2}}
        upload(late, "late", model_files.onnx, claimed, expect=409)
    with db.session() as s:
        create_job_token(s, job_id, second, "default")
    with _as(live_server, secret_1) as late:
        gone = late.post(f"/api/v1/jobs/{job_id}/attempts/1/metrics", json=metrics)
        assert gone.status_code == 401, "an earlier attempt's token goes when the next is minted"
    assert http.get(f"/api/v1/jobs/{job_id}/metrics").json() == []
    assert http.get("/api/v1/models/late/versions").json() == []


def test_a_job_token_always_registers_with_lineage(
    live_server: LiveServer, http: httpx.Client, db: Database, model_files: Any
) -> None:
    job_id = _queue(db)
    _, secret = _start(db, job_id)
    with _as(live_server, secret) as job:
        version = upload(job, "made", model_files.onnx, {})
        other = upload(job, "made", model_files.onnx, {"job": {"id": 999, "attempt": 7}})
    assert version["lineage"]["job_id"] == str(job_id)
    assert other["lineage"]["job_id"] == str(job_id), "the token's job, not the body's"


def test_people_cannot_write_a_running_jobs_records(
    live_server: LiveServer, http: httpx.Client, db: Database
) -> None:
    job_id = _queue(db)
    attempt, secret = _start(db, job_id)
    base = f"/api/v1/jobs/{job_id}/attempts/{attempt}"
    writes: list[tuple[str, str, dict[str, Any]]] = [
        ("POST", "metrics", {"json": {"metrics": [{"name": "loss", "value": 1.0}]}}),
        ("POST", "outputs", {"json": {"accuracy": 1.0}}),
        ("PUT", "checkpoint", {"content": b"forged", "params": {"step": 1}}),
        ("POST", "logs", {"content": b"forged log line\n"}),
        ("POST", "artifacts/report.txt", {"content": b"forged"}),
        ("POST", "heartbeat", {}),
    ]
    editor = http.post("/api/v1/tokens", json={"name": "ed", "role": "editor"}).json()["secret"]
    with _as(live_server, editor) as an_editor:
        for person in (http, an_editor):
            for method, suffix, kwargs in writes:
                response = person.request(method, f"{base}/{suffix}", **kwargs)
                assert response.status_code == 403, (suffix, response.text)
                assert "only the token of job" in response.json()["error"]["message"]
    job = http.get(f"/api/v1/jobs/{job_id}").json()
    assert job["outputs"] == {}
    assert http.get(f"/api/v1/jobs/{job_id}/metrics").json() == []
    assert http.get(f"/api/v1/jobs/{job_id}/checkpoints").json() == []
    logs = http.get(f"/api/v1/jobs/{job_id}/logs", params={"attempt": attempt})
    assert "forged" not in logs.text
    with _as(live_server, secret) as own:
        ok = own.post(f"{base}/metrics", json={"metrics": [{"name": "loss", "value": 0.5}]})
        assert ok.status_code == 200, ok.text


def test_the_last_global_admin_token_cannot_be_revoked(
    live_server: LiveServer, http: httpx.Client
) -> None:
    me = http.get("/api/v1/whoami").json()["token_id"]
    refused = http.delete(f"/api/v1/tokens/{me}")
    assert refused.status_code == 409
    assert "create another admin token first" in refused.json()["error"]["message"]
    http.post("/api/v1/projects", json={"name": "p2"})
    scoped = {"name": "p2-admin", "role": "admin", "project": "p2"}
    assert http.post("/api/v1/tokens", json=scoped).status_code == 201
    assert http.delete(f"/api/v1/tokens/{me}").status_code == 409, "a project admin is no spare"
    spare = http.post("/api/v1/tokens", json={"name": "spare", "role": "admin"}).json()
    assert http.delete(f"/api/v1/tokens/{me}").status_code == 200
    with _as(live_server, spare["secret"]) as second:
        last = second.delete(f"/api/v1/tokens/{spare['id']}")
        assert last.status_code == 409
        assert second.get("/api/v1/tokens").status_code == 200


def test_a_revoked_token_stops_at_once_on_this_processs_inference_path(
    live_server: LiveServer, http: httpx.Client
) -> None:
    made = http.post("/api/v1/tokens", json={"name": "reader", "role": "viewer"}).json()
    with _as(live_server, made["secret"]) as reader:
        assert reader.get("/v2").status_code == 200  # now cached for the cache's TTL (2 s)
        assert http.delete(f"/api/v1/tokens/{made['id']}").status_code == 200
        after = reader.get("/v2")
        assert after.status_code == 401, "the revoke cleared this process's auth cache"


def _reset(home: Path, database_url: str) -> Any:
    from aimass.cli import app

    args = ["tokens", "reset-admin", "--home", str(home), "--database-url", database_url]
    return CliRunner().invoke(app, args)


def test_reset_admin_recovers_a_locked_out_installation(settings: Settings) -> None:
    from aimass.api.server import prepare

    prepare(settings)  # an installation whose admin secret was then lost
    lost = settings.token_file.read_text().strip()
    settings.token_file.unlink()
    result = _reset(settings.home, settings.resolved_database_url)
    assert result.exit_code == 0, result.output
    assert str(settings.token_file) in result.output
    assert stat.S_IMODE(os.stat(settings.token_file).st_mode) == 0o600
    secret = settings.token_file.read_text().strip()
    assert secret.startswith("aim_") and secret != lost
    assert secret not in result.output, "the secret stays in the owner-only file"
    server = start_server(settings)
    live = next(server)
    try:
        with _as(live, secret) as admin:
            assert admin.get("/api/v1/whoami").json()["project"] is None
            assert admin.post("/api/v1/tokens", json={"name": "x", "role": "admin"}).is_success
    finally:
        server.close()


def test_reset_admin_refuses_a_folder_with_no_installation(tmp_path: Path) -> None:
    result = _reset(tmp_path / "nothing", f"sqlite:///{tmp_path / 'nothing' / 'aimass.db'}")
    assert result.exit_code == 1
    assert "no aimass installation" in result.output
    assert not (tmp_path / "nothing").exists()
