"""A server killed with SIGKILL mid-upload leaves no half-registered version behind."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from tests.conftest import free_port

from tests_support import upload

pytestmark = pytest.mark.backend("postgresql")  # slow end to end: one backend (tests/conftest.py)


def _start(home: Path, port: int, db_url: str) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "AIMASS_HOME": str(home),
        "AIMASS_PORT": str(port),
        "AIMASS_DATABASE_URL": db_url,
    }
    log = home.parent / "server.log"
    with log.open("ab") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "aimass", "server", "--no-demo"],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(log.read_text())
        try:
            if httpx.get(f"http://127.0.0.1:{port}/v2/health/ready", timeout=1).status_code == 200:
                return proc
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    proc.kill()
    raise RuntimeError("server did not become ready")


@pytest.mark.slow
def test_kill_9_during_a_large_upload_leaves_no_version_and_no_orphans(
    tmp_path: Path, db_url: str, model_files: Any
) -> None:
    home = tmp_path / "home"
    port = free_port()
    proc = _start(home, port, db_url)
    token = (home / "token").read_text().strip()
    sent = 0
    killed = threading.Event()

    def body() -> Any:
        nonlocal sent
        yield b'--b\r\nContent-Disposition: form-data; name="file"; filename="big.onnx"\r\n\r\n'
        chunk = b"\0" * (1024 * 1024)
        while sent < 400 * len(chunk):
            if sent >= 64 * len(chunk) and not killed.is_set():
                proc.send_signal(signal.SIGKILL)
                proc.wait()
                killed.set()
            sent += len(chunk)
            yield chunk

    with pytest.raises(httpx.HTTPError):
        httpx.post(
            f"http://127.0.0.1:{port}/api/v1/models/big/versions",
            content=body(),
            headers={
                "content-type": "multipart/form-data; boundary=b",
                "authorization": f"Bearer {token}",
            },
            timeout=30,
        )
    assert killed.is_set()

    proc = _start(home, port, db_url)
    try:
        with httpx.Client(
            base_url=f"http://127.0.0.1:{port}", headers={"authorization": f"Bearer {token}"}
        ) as http:
            assert http.get("/api/v1/versions").json() == []
            assert http.get("/api/v1/models/big").status_code == 404
            assert list((home / "spool").iterdir()) == []
            leftovers = [p for p in (home / "artifacts").rglob("*") if p.is_file()]
            assert leftovers == []
            version = upload(http, "big", model_files.onnx)
            assert version["version"] == 1
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=20)
