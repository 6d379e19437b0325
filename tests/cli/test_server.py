"""``aimass server`` as a user starts it: a subprocess, found by the CLI through its home."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from tests.conftest import free_port
from typer.testing import CliRunner

from aimass.cli import app
from aimass.cli.server import build_settings


def test_flags_override_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("AIMASS_PORT", "9999")
    monkeypatch.setenv("AIMASS_WORKERS", "3")
    settings = build_settings(port=1234, home=tmp_path, workers=None, auth=None)
    assert settings.port == 1234
    assert settings.workers == 3
    assert settings.home == tmp_path
    assert settings.auth is True


@pytest.mark.slow
def test_server_command_serves_and_the_cli_finds_its_token(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    port = free_port()
    home = tmp_path / "home"
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIMASS_")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "aimass.cli", "server", "--home", str(home), "--port", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, proc.stdout.read() if proc.stdout else ""
            try:
                if httpx.get(f"{url}/v2/health/ready", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "server did not become ready"
            time.sleep(0.1)
        monkeypatch.delenv("AIMASS_TOKEN", raising=False)
        monkeypatch.setenv("AIMASS_HOME", str(home))
        result = CliRunner().invoke(app, ["--url", url, "whoami", "--json"])
        assert result.exit_code == 0, result.output
        assert json.loads(result.stdout)["role"] == "admin"
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if proc.stdout:
            proc.stdout.close()


def test_a_taken_port_fails_fast_in_one_line(tmp_path: Path) -> None:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIMASS_")}
    with socket.socket() as taken:
        taken.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        taken.bind(("127.0.0.1", port))
        taken.listen()
        home = str(tmp_path / "home")
        done = subprocess.run(
            [sys.executable, "-m", "aimass.cli", "server", "--home", home, "--port", str(port)],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert done.returncode != 0
    lines = done.stderr.strip().splitlines()
    assert lines == [
        f"error: cannot listen on 127.0.0.1:{port}: Address already in use "
        "(is another server running there? choose another --port)"
    ]
    assert "serving on" not in done.stdout + done.stderr
    assert not (tmp_path / "home").exists()  # nothing was prepared


def test_server_help_says_what_it_serves() -> None:
    result = CliRunner().invoke(app, ["server", "--help"], terminal_width=200)
    assert result.exit_code == 0
    assert "/docs" in result.stdout and "/metrics" in result.stdout
    assert "web UI at /" in result.stdout and "--grpc-port" in result.stdout
