"""``aimass datasets``, ``tokens``, ``whoami`` and the failure paths of the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from tests.cli.test_models import CliRunnerCall
from tests.client.files import write_csv
from tests.conftest import LiveServer, free_port
from typer.testing import CliRunner

from aimass.cli import app
from aimass.cli.datasets import sparkline


@pytest.fixture
def aimass(live_server: LiveServer) -> CliRunnerCall:
    return CliRunnerCall(live_server)


def test_whoami(aimass: CliRunnerCall) -> None:
    out, _ = aimass("whoami")
    assert "admin" in out
    assert json.loads(aimass("whoami", "--json")[0])["role"] == "admin"


def test_datasets_upload_list_show(aimass: CliRunnerCall, tmp_path: Path) -> None:
    csv = write_csv(tmp_path / "data.csv")
    out, _ = aimass("datasets", "upload", "table", str(csv), "--description", "demo")
    assert "50 rows" in out
    assert "table" in aimass("datasets", "list")[0]
    assert json.loads(aimass("datasets", "list", "--json")[0])[0]["name"] == "table"
    profile, _ = aimass("datasets", "show", "table")
    for column in ("id", "value", "label", "missing", "mean"):
        assert column in profile
    assert any(ch in profile for ch in "▁▂▃▄▅▆▇█")
    detail = json.loads(aimass("datasets", "show", "table", "--version", "1", "--json")[0])
    assert detail["num_rows"] == 50
    target = tmp_path / "copy.csv"
    aimass("datasets", "download", "table", "1", "--out", str(target))
    assert target.read_bytes() == csv.read_bytes()


def test_tokens_create_list_revoke(aimass: CliRunnerCall, live_server: LiveServer) -> None:
    created = json.loads(aimass("tokens", "create", "bot", "--role", "editor", "--json")[0])
    assert created["secret"]
    assert "bot" in aimass("tokens", "list")[0]
    aimass("tokens", "revoke", str(created["id"]))
    listed = json.loads(aimass("tokens", "list", "--json")[0])
    assert next(t for t in listed if t["id"] == created["id"])["revoked_at"]
    result = CliRunner().invoke(
        app, ["--url", live_server.url, "--token", created["secret"], "whoami"]
    )
    assert result.exit_code == 1
    assert result.stderr.startswith("error: ")


def test_unreachable_server_says_to_start_it() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    result = CliRunner().invoke(app, ["--url", url, "--token", "t", "models", "list"])
    assert result.exit_code == 1
    assert "aimass server" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize(
    "command",
    [[], ["models"], ["models", "upload"], ["datasets", "show"], ["tokens", "create"], ["server"]],
)
def test_every_command_has_help_with_an_example(command: list[str]) -> None:
    result = CliRunner().invoke(app, [*command, "--help"])
    assert result.exit_code == 0
    assert "Usage" in result.stdout
    if command[1:] or command == ["server"]:
        assert "Example" in result.stdout


def test_sparkline_scales_to_the_biggest_bin() -> None:
    assert sparkline([0, 5, 10]) == "▁▅█"
    assert sparkline([]) == ""
    assert sparkline([0, 0]) == "▁▁"


def test_db_upgrade_masks_the_password(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["db", "upgrade", "--home", str(tmp_path), "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["database_url"].endswith("aimass.db")
    from aimass.cli.server import masked_url

    assert masked_url("postgresql+psycopg://u:hunter2@db/aimass") == (
        "postgresql+psycopg://u:***@db/aimass"
    )
