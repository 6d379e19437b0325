"""Five broken plugins pip-installed beside a good one: the server starts, serves, and says why.

The plugins are real wheels installed with ``pip install --target``; the
server is its own process with that folder on ``PYTHONPATH``. A plugin that
hangs gets ``AIMASS_PLUGIN_TIMEOUT_S`` (1 s here). The start time is printed
by ``benchmarks/plugins/start_time.py``, not asserted.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from tests.conftest import free_port, start_server_process
from tests.plugins.broken import BROKEN, GOOD
from tests.plugins.wheels import install_plugins
from typer.testing import CliRunner

from aimass.cli import app
from aimass.config import Settings, settings_env
from aimass.entities.plugins import PluginStatus


@dataclass
class PluginServer:
    url: str
    token: str
    settings: Settings
    env: dict[str, str]


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The five broken plugins, the contract mismatch and a good one, installed by pip."""
    dists = [GOOD, *(dist for dist, _ in BROKEN.values())]
    return install_plugins(dists, tmp_path_factory.mktemp("plugins"))


def _settings(home: Path) -> Settings:
    return Settings(home=home, port=free_port(), tune_gc=False, jobs=False, plugin_timeout_s=1.0)


def _env(site: Path) -> dict[str, str]:
    path = os.environ.get("PYTHONPATH")
    return {"PYTHONPATH": f"{site}{os.pathsep}{path}" if path else str(site)}


@pytest.fixture(scope="module")
def server(site: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[PluginServer]:
    settings = _settings(tmp_path_factory.mktemp("home"))
    env = _env(site)
    with pytest.MonkeyPatch.context() as mp:
        for key, value in env.items():
            mp.setenv(key, value)
        process = start_server_process(settings)
    try:
        token = settings.token_file.read_text().strip()
        yield PluginServer(f"http://127.0.0.1:{settings.port}", token, settings, env)
    finally:
        process.kill()
        process.wait(10)


def _statuses(server: PluginServer) -> dict[str, PluginStatus]:
    import aimass

    with aimass.Client(url=server.url, token=server.token) as client:
        return {p.name: p for p in client.plugins.list()}


def test_the_server_starts_serves_and_lists_each_broken_plugin_with_its_reason(
    server: PluginServer,
) -> None:
    auth = {"Authorization": f"Bearer {server.token}"}
    assert httpx.get(f"{server.url}/v2/health/ready").status_code == 200
    assert httpx.get(f"{server.url}/api/v1/models", headers=auth).status_code == 200

    statuses = _statuses(server)

    for name, (dist, reason) in BROKEN.items():
        status = statuses[name]
        assert status.status == "failed", name
        assert status.reason is not None and reason in status.reason, (name, status.reason)
        assert status.package == dist.name and status.version == dist.version
        assert status.slots == {}, name  # a failed plugin registered nothing
    good = statuses["acme-good"]
    assert good.status == "ok" and good.reason is None
    assert (good.package, good.version, good.contract) == ("acme-good", "1.2.0", "1.0")
    assert good.slots == {
        "data_cleaners": ["acme.drop_empty"],
        "fusion_strategies": ["acme.median"],
    }
    builtin = statuses["builtin-flavors"]
    assert builtin.status == "ok" and "onnx" in builtin.slots["flavors"]


def test_a_plugin_for_another_contract_is_refused_with_one_message(server: PluginServer) -> None:
    status = _statuses(server)["future-contract"]

    assert status.status == "failed" and status.contract == "2.0"
    assert status.reason == (
        "ContractMismatch: built for plugin contract 2.0, but this aimass speaks contract 1.0; "
        "install a release of the plugin made for 1.x"
    )


def test_plugins_list_on_the_command_line_reads_at_80_columns(server: PluginServer) -> None:
    result = CliRunner().invoke(
        app,
        ["--url", server.url, "--token", server.token, "plugins", "list"],
        env={"COLUMNS": "80"},
    )

    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert max(len(line) for line in lines) <= 80
    assert "6 failed" in lines[0]
    for name in [*BROKEN, "acme-good", "builtin-zoo"]:
        assert any(line.startswith(name) for line in lines), name
    assert "timed out" in result.stdout and "acme.drop_empty" in result.stdout


def test_strict_mode_refuses_to_start_and_names_every_failure(site: Path, tmp_path: Path) -> None:
    settings = _settings(tmp_path / "home")
    env = {**os.environ, **settings_env(settings), **_env(site), "AIMASS_STRICT_PLUGINS": "1"}

    done = subprocess.run(
        [sys.executable, "-m", "aimass.cli", "server"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert done.returncode != 0
    assert "6 plugin(s) failed to load and strict plugins are on" in done.stderr
    for name in BROKEN:
        assert f"{name!r}" in done.stderr, name
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"http://127.0.0.1:{settings.port}/v2/health/live")
