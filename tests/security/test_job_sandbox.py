"""Job code cannot reach the server's secrets (issue 9 item 5): it gets its attempt token only.

A real server with jobs on runs a hostile script job (``_sandbox_probe.py``)
that tries to read the SQLite file, the token file and an artifact, to list
the server's and the OS user's homes, to write beside them, to read the
server's environment directly and through /proc; each attempt must fail while
the job itself succeeds. The installation lies in a folder on ``sys.path``, so
the sandbox binds it in for imports: only the hiding keeps it out of reach.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy.engine import make_url

from aimass.config import Settings
from aimass.sandbox import python_dirs
from conftest import LiveServer, start_server
from jobs.conftest import job_settings, wait_for

pytestmark = [pytest.mark.slow, pytest.mark.backend("postgresql")]  # one backend: tests/conftest.py

PROBE = Path(__file__).parent / "_sandbox_probe.py"
#: What an attempt is given on purpose: its identity, its scratch folder, the URL and its token.
JOB_ENV = {
    "AIMASS_SCRATCH_DIR",
    "AIMASS_CHECKPOINT",
    "AIMASS_URL",
    "AIMASS_TOKEN",
    "AIMASS_PROJECT",
    "AIMASS_HEARTBEAT_S",
}


@pytest.fixture
def marker(monkeypatch: pytest.MonkeyPatch) -> str:
    """A secret in the server's environment, under an ``AIMASS_`` name."""
    value = f"server-secret-{uuid.uuid4().hex}"
    monkeypatch.setenv("AIMASS_ADMIN_SECRET", value)
    return value


@pytest.fixture
def sandboxed_server(
    settings: Settings, tmp_path: Path, marker: str, monkeypatch: pytest.MonkeyPatch
) -> Iterator[LiveServer]:
    """A server with jobs on whose whole installation sits in a folder on ``sys.path``."""
    monkeypatch.syspath_prepend(str(tmp_path))  # as a project folder run with ``python -m``
    artifacts = Path(settings.resolved_artifacts)
    artifacts.mkdir(parents=True, exist_ok=True)
    (artifacts / "planted.bin").write_bytes(b"artifact bytes")
    yield from start_server(job_settings(settings))


def _probe(server: LiveServer, tmp_path: Path, marker: str) -> dict[str, Any]:
    settings = server.settings
    url = make_url(settings.resolved_database_url)
    params = {
        "marker": marker,
        "database": url.database if url.get_backend_name() == "sqlite" else None,
        "token": str(settings.token_file),
        "artifact": str(Path(settings.resolved_artifacts) / "planted.bin"),
        "artifacts": settings.resolved_artifacts,
        "server_home": str(settings.home),
        "os_home": str(Path.home()),
        "project": str(tmp_path),
        "server_pid": os.getpid(),
    }
    with httpx.Client(
        base_url=server.url,
        headers={"Authorization": f"Bearer {server.admin_token}"},
        timeout=60,
    ) as api:
        body = {"kind": "script", "entry": "probe.py:main", "params": params}
        response = api.post(
            "/api/v1/jobs/script",
            files={"source": ("probe.py", PROBE.read_bytes(), "text/x-python")},
            data={"spec": json.dumps(body)},
        )
        assert response.status_code == 201, response.text
        job = wait_for(api, response.json()["id"], timeout=90)
    assert job["state"] == "succeeded", job  # the sandbox fences the job, it does not break it
    outputs: dict[str, Any] = job["outputs"]
    return outputs


def test_job_code_cannot_read_the_servers_database_token_artifacts_or_environment(
    sandboxed_server: LiveServer, tmp_path: Path, marker: str
) -> None:
    assert sandboxed_server.settings.job_sandbox == "bwrap"
    assert Path(sandboxed_server.settings.token_file).is_file()
    seen = _probe(sandboxed_server, tmp_path, marker)

    if seen["database"] != "no file":
        assert seen["database"].startswith("refused"), seen
    assert seen["token"].startswith("refused"), seen
    assert seen["artifact"].startswith("refused"), seen
    assert seen["artifact_dir"] in ([], "refused: FileNotFoundError"), seen
    # Only the folders attempts write to (their scratch folders and logs) show in the home.
    assert set(seen["server_home"]) <= {"scratch", "logs"}, seen
    # A write beside the installation lands in the sandbox's throwaway tmpfs, never on disk.
    assert not (tmp_path / "planted-by-job.txt").exists(), seen["write_project"]
    # The OS user's home shows at most the folders that lead to the Python install.
    home = Path.home()
    python_under_home = {
        Path(d).relative_to(home).parts[0]
        for d in python_dirs()
        if Path(d).is_relative_to(home) and Path(d) != home
    }
    assert isinstance(seen["os_home"], str) or set(seen["os_home"]) <= python_under_home, seen

    assert seen["server_environ"].startswith("refused"), seen  # its own pid namespace
    assert seen["environs_with_marker"] == [], seen
    assert not seen["marker_in_env"], seen
    extra = [k for k in seen["env_keys"] if k not in JOB_ENV and not k.startswith("AIMASS_JOB_")]
    assert extra == [], f"server variables reached the job: {extra}"
    assert "AIMASS_TOKEN" in seen["env_keys"]  # it still reaches the platform, over HTTP
    assert seen["scratch_writable"] == "written", seen
