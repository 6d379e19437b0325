"""``aimass deploy``, ``aimass deployments`` and ``aimass predict`` against a real server."""

from __future__ import annotations

import csv
import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
import typer
from tests.cli.test_models import CliRunnerCall
from tests.conftest import LiveServer, ModelFiles
from typer.testing import CliRunner

from aimass import Client
from aimass.cli import app
from aimass.cli.deployments import parse_traffic


@pytest.fixture
def aimass(live_server: LiveServer) -> CliRunnerCall:
    return CliRunnerCall(live_server)


@pytest.fixture
def cancer(client: Client, model_files: ModelFiles) -> ModelFiles:
    """Model ``cancer``: version 1 is ONNX, version 2 the same pipeline as skops."""
    client.models.upload("cancer", model_files.onnx)
    client.models.upload("cancer", model_files.skops)
    return model_files


def _write_csv(path: Path, rows: np.ndarray) -> Path:
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow([f"f{i}" for i in range(rows.shape[1])])
        writer.writerows(rows.tolist())
    return path


def _one_error_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("error: ")
    assert "Traceback" not in err
    return lines[0]


def test_deploy_list_show_and_predict_a_csv(
    aimass: CliRunnerCall, cancer: ModelFiles, tmp_path: Path
) -> None:
    out, _ = aimass(
        "deploy", "cancer", "--version", "1", "--max-batch-size", "8", "--max-queue", "32"
    )
    assert "deployed cancer" in out
    assert "ready" in out
    listed, _ = aimass("deployments", "list")
    assert "cancer" in listed
    assert "v1" in listed
    assert json.loads(aimass("deployments", "list", "--json")[0])[0]["state"] == "ready"
    shown, _ = aimass("deployments", "show", "cancer")
    assert "version 1" in shown
    assert "ready" in shown
    detail = json.loads(aimass("deployments", "show", "cancer", "--json")[0])
    assert detail["batching"]["max_batch_size"] == 8
    assert detail["batching"]["max_queue"] == 32
    assert detail["replica_status"][0]["versions"] == [1]

    x = np.asarray(cancer.x)[:6]
    rows = _write_csv(tmp_path / "rows.csv", x)
    table, _ = aimass("predict", "cancer", "--input", str(rows))
    assert "6 prediction(s)" in table
    assert "probability" in table
    answer = json.loads(aimass("predict", "cancer", "--input", str(rows), "--json")[0])
    assert answer["version"] == 1
    assert len(answer["predictions"]) == 6
    as_json = tmp_path / "rows.json"
    as_json.write_text(json.dumps({"inputs": x.tolist()}))
    from_json = json.loads(aimass("predict", "cancer", "-i", str(as_json), "--json")[0])
    assert from_json["predictions"] == answer["predictions"]


def test_predict_reads_stdin(aimass: CliRunnerCall, cancer: ModelFiles) -> None:
    aimass("deploy", "cancer", "--version", "1")
    rows = json.dumps(np.asarray(cancer.x)[:2].tolist())
    server = aimass.server
    result = CliRunner().invoke(
        app,
        ["--url", server.url, "--token", server.admin_token, "predict", "cancer", "-i", "-"],
        input=rows,
    )
    assert result.exit_code == 0, result.stderr
    assert "2 prediction(s)" in result.stdout


def test_update_traffic_and_delete(
    aimass: CliRunnerCall, cancer: ModelFiles, tmp_path: Path
) -> None:
    aimass("models", "alias", "cancer", "canary", "2")
    aimass("deploy", "cancer", "--name", "ab", "--traffic", "1=90", "--traffic", "canary=10")
    shown = json.loads(aimass("deployments", "show", "ab", "--json")[0])
    assert shown["routes"] == [
        {"version": 1, "alias": None, "weight": 90.0},
        {"version": None, "alias": "canary", "weight": 10.0},
    ]
    out, _ = aimass("deployments", "update", "ab", "--version", "2", "--replicas", "2")
    assert "updated ab" in out
    assert "v2" in out
    updated = json.loads(aimass("deployments", "show", "ab", "--json")[0])
    assert updated["revision"] == 2
    assert updated["replicas"] == 2
    _, err = aimass("deployments", "update", "ab", code=2)
    assert "nothing to change" in err
    aimass("deployments", "delete", "ab", "--yes")
    assert json.loads(aimass("deployments", "list", "--json")[0]) == []
    rows = tmp_path / "rows.json"
    rows.write_text(json.dumps(np.asarray(cancer.x)[:1].tolist()))
    _, err = aimass("predict", "ab", "--input", str(rows), code=1)
    assert "ab" in _one_error_line(err)


def test_deploying_a_missing_version_is_one_line_and_exit_1(
    aimass: CliRunnerCall, cancer: ModelFiles
) -> None:
    out, err = aimass("deploy", "cancer", "--version", "9", code=1)
    assert out == ""
    line = _one_error_line(err)
    assert "version 9" in line
    _, err = aimass("deploy", "cancer", "--version", "1", "--alias", "canary", code=2)
    assert "exactly one" in err
    _, err = aimass("deployments", "show", "ghost", code=1)
    assert "ghost" in _one_error_line(err)


def test_deploy_waits_and_reports_a_load_failure(
    aimass: CliRunnerCall, cancer: ModelFiles, client: Client, live_server: LiveServer
) -> None:
    sha = client.models.get_version("cancer", 2).sha256
    stored = Path(live_server.settings.resolved_artifacts).rglob("*")
    target = next(p for p in stored if p.is_file() and _sha256(p) == sha)
    target.write_bytes(b"corrupt" + target.read_bytes()[7:])
    out, err = aimass("deploy", "cancer", "--version", "2", code=1)
    assert out == ""
    assert "checksum" in _one_error_line(err)
    out, _ = aimass("deploy", "cancer", "--name", "later", "--version", "2", "--no-wait")
    assert "deployed later" in out


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_bad_input_files_are_one_line(aimass: CliRunnerCall, tmp_path: Path) -> None:
    _, err = aimass("predict", "x", "--input", str(tmp_path / "missing.csv"), code=1)
    assert "missing.csv" in _one_error_line(err)
    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    _, err = aimass("predict", "x", "--input", str(broken), code=1)
    assert "not valid JSON" in _one_error_line(err)
    scalar = tmp_path / "scalar.json"
    scalar.write_text('{"rows": 3}')
    _, err = aimass("predict", "x", "--input", str(scalar), code=1)
    assert "inputs" in _one_error_line(err)


def test_traffic_items_name_versions_or_aliases() -> None:
    assert parse_traffic(["1=90", "canary=10.5"]) == [
        {"version": 1, "weight": 90.0},
        {"alias": "canary", "weight": 10.5},
    ]
    assert parse_traffic(None) is None
    for bad in ("1", "=5", "canary=x", "2=0"):
        with pytest.raises(typer.BadParameter, match="VERSION_OR_ALIAS=WEIGHT"):
            parse_traffic([bad])


@pytest.mark.parametrize(
    "command",
    [
        ["deploy"],
        ["deployments"],
        ["deployments", "list"],
        ["deployments", "show"],
        ["deployments", "update"],
        ["deployments", "delete"],
        ["predict"],
    ],
)
def test_every_deployment_command_has_help_with_an_example(command: list[str]) -> None:
    result = CliRunner().invoke(app, [*command, "--help"])
    assert result.exit_code == 0
    assert "Usage" in result.stdout
    if command != ["deployments"]:
        assert "Example" in result.stdout
