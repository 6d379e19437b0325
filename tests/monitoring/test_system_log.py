"""The structured system log: JSON lines per day, searched by level, component, request id, text."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

import aimass
from aimass.config import Settings
from aimass.errors import InvalidInput
from aimass.monitoring.system_log import JsonLogHandler, search
from conftest import free_port, start_server


@pytest.fixture
def logger(tmp_path: Path) -> Iterator[logging.Logger]:
    found = logging.getLogger("aimass.test_system_log")
    found.setLevel(logging.INFO)
    found.propagate = False
    handler = JsonLogHandler(tmp_path / "system", request_id=lambda: "req-from-context")
    found.addHandler(handler)
    yield found
    found.removeHandler(handler)
    handler.close()


def test_records_are_json_lines_found_by_each_filter(
    tmp_path: Path, logger: logging.Logger
) -> None:
    folder = tmp_path / "system"
    logger.info("model iris loaded")
    logger.warning("queue almost full", extra={"request_id": "abcdef123456"})
    try:
        raise ValueError("boom")
    except ValueError:
        logger.exception("predict failed")
    with (folder / f"{datetime.now(UTC).date()}.jsonl").open("a") as out:
        out.write('{"torn": \n')
    everything = search(folder)
    assert [r.message for r in everything] == [
        "model iris loaded", "queue almost full", "predict failed",
    ]  # fmt: skip
    first = everything[0]
    assert first.component == "aimass.test_system_log" and first.level == "info"
    assert first.request_id == "req-from-context" and first.node and first.pid
    assert [r.message for r in search(folder, level="warning")] == [
        "queue almost full", "predict failed",
    ]  # fmt: skip
    assert search(folder, request_id="abcdef123456")[0].message == "queue almost full"
    assert "ValueError: boom" in (search(folder, text="FAILED")[0].exc or "")
    assert search(folder, component="aimass.serving") == []
    assert search(folder, since=datetime.now(UTC) + timedelta(minutes=1)) == []
    with pytest.raises(InvalidInput, match="level must be one of"):
        search(folder, level="loud")


def test_files_past_retention_are_deleted(tmp_path: Path) -> None:
    folder = tmp_path / "system"
    folder.mkdir()
    (folder / "2000-01-01.jsonl").write_text("")
    handler = JsonLogHandler(folder, retention_days=14)
    handler.emit(logging.makeLogRecord({"name": "aimass.x", "msg": "hi", "levelname": "INFO"}))
    handler.close()
    assert [p.name for p in folder.iterdir()] == [f"{datetime.now(UTC).date()}.jsonl"]


def test_the_api_searches_the_server_log(tmp_path: Path) -> None:
    from aimass.api.server import install_system_log

    settings = Settings(
        home=tmp_path / "home",
        database_url=f"sqlite:///{tmp_path / 'aimass.db'}",
        artifacts=str(tmp_path / "artifacts"),
        port=free_port(),
        tune_gc=False,
        jobs=False,
    )
    install_system_log(settings)
    component = logging.getLogger("aimass.monitoring")
    try:
        for server in start_server(settings):
            component.warning("drift check skipped for churn")
            with aimass.Client(url=server.url, token=server.admin_token) as client:
                found = client.monitoring.logs(component="aimass.monitoring", text="churn")
                assert [r.message for r in found] == ["drift check skipped for churn"]
                assert found[0].level == "warning"
                with pytest.raises(InvalidInput, match="level must be one of"):
                    client.monitoring.logs(level="loud")
    finally:
        for name in ("aimass", "uvicorn.error"):
            for handler in list(logging.getLogger(name).handlers):
                if isinstance(handler, JsonLogHandler):
                    logging.getLogger(name).removeHandler(handler)
                    handler.close()
