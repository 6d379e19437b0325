"""``aimass models`` against a real server, checked the way a user would."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from tests.client.files import write_onnx
from tests.conftest import LiveServer
from typer.testing import CliRunner

from aimass.cli import app


@pytest.fixture
def aimass(live_server: LiveServer) -> CliRunnerCall:
    return CliRunnerCall(live_server)


class CliRunnerCall:
    """Runs ``aimass --url ... --token ... ARGS`` in-process."""

    def __init__(self, server: LiveServer) -> None:
        self.server = server
        self.runner = CliRunner()

    def __call__(self, *args: str, code: int = 0) -> tuple[str, str]:
        result = self.runner.invoke(
            app, ["--url", self.server.url, "--token", self.server.admin_token, *args]
        )
        assert result.exit_code == code, (result.stdout, result.stderr, result.exception)
        return result.stdout, result.stderr


@pytest.fixture
def onnx_file(tmp_path: Path) -> Path:
    return write_onnx(tmp_path / "scale.onnx")


def test_upload_list_show(aimass: CliRunnerCall, onnx_file: Path) -> None:
    out, _ = aimass(
        "models", "upload", "scale", str(onnx_file), "--metric", "accuracy=0.9", "--tag", "k=v"
    )
    assert "scale" in out
    assert "version 1" in out
    table, _ = aimass("models", "list")
    assert "scale" in table
    listed = json.loads(aimass("models", "list", "--json")[0])
    assert [m["name"] for m in listed] == ["scale"]
    shown, _ = aimass("models", "show", "scale")
    assert "onnx" in shown
    detail = json.loads(aimass("models", "show", "scale", "--json")[0])
    assert detail["versions"][0]["metrics"] == {"accuracy": 0.9}


def test_download_gives_identical_bytes(
    aimass: CliRunnerCall, onnx_file: Path, tmp_path: Path
) -> None:
    aimass("models", "upload", "scale", str(onnx_file))
    target = tmp_path / "got.onnx"
    out, _ = aimass("models", "download", "scale", "1", "--out", str(target), "--json")
    assert json.loads(out)["path"] == str(target)
    assert target.read_bytes() == onnx_file.read_bytes()


def test_unknown_model_is_one_line_and_exit_1(aimass: CliRunnerCall) -> None:
    out, err = aimass("models", "show", "ghost", code=1)
    assert out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("error: ")
    assert "ghost" in lines[0]
    assert "request id" in lines[0]
    assert "Traceback" not in err


def test_alias_search_and_delete(aimass: CliRunnerCall, onnx_file: Path) -> None:
    aimass("models", "upload", "scale", str(onnx_file), "--metric", "accuracy=0.7")
    aimass("models", "upload", "scale", str(onnx_file), "--metric", "accuracy=0.97")
    aimass("models", "alias", "scale", "production", "2")
    found = json.loads(aimass("models", "search", "--metric", "accuracy>=0.9", "--json")[0])
    assert [(v["model"], v["version"], v["aliases"]) for v in found] == [
        ("scale", 2, ["production"])
    ]
    table, _ = aimass("models", "search", "--alias", "production")
    assert "scale" in table
    aimass("models", "alias", "scale", "production", "--delete")
    assert json.loads(aimass("models", "show", "scale", "--json")[0])["aliases"] == {}
    aimass("models", "delete", "scale", "--version", "1", "--yes")
    versions = json.loads(aimass("models", "show", "scale", "--json")[0])["versions"]
    assert [v["version"] for v in versions] == [2]
    aimass("models", "delete", "scale", "--yes")
    aimass("models", "show", "scale", code=1)


def test_export_then_import(aimass: CliRunnerCall, onnx_file: Path, tmp_path: Path) -> None:
    aimass("models", "upload", "scale", str(onnx_file))
    out, _ = aimass("models", "export", "scale", "1", "--out", str(tmp_path), "--json")
    bundle = Path(json.loads(out)["path"])
    assert bundle.is_file()
    imported = json.loads(aimass("models", "import", str(bundle), "--name", "copy", "--json")[0])
    assert imported["model"] == "copy"


def test_bad_metric_is_a_usage_error(aimass: CliRunnerCall, onnx_file: Path) -> None:
    aimass("models", "upload", "scale", str(onnx_file), "--metric", "accuracy=high", code=2)
