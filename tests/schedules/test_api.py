"""Schedules through a live server: REST refusals, the SDK, the CLI, and a real firing."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import timedelta

import httpx
import pytest
from sqlalchemy import update
from tests.cli.test_models import CliRunnerCall
from tests.conftest import LiveServer, start_server

import aimass
from aimass.config import Settings
from aimass.errors import Conflict, InvalidInput, NotFound, Unprocessable
from aimass.store.db import Database
from aimass.store.orm import ScheduleRow, utcnow
from jobs.conftest import job_settings

pytestmark = pytest.mark.backend("sqlite")  # slow end to end: one backend (tests/conftest.py)


@pytest.fixture
def live_server(settings: Settings) -> Iterator[LiveServer]:
    """A live server that runs jobs, so a schedule's job really runs (root ``client`` uses it)."""
    yield from start_server(job_settings(settings))


def test_a_bad_cron_is_a_422_naming_the_field(live_server: LiveServer) -> None:
    headers = {"Authorization": f"Bearer {live_server.admin_token}"}
    with httpx.Client(base_url=live_server.url, headers=headers) as http:
        body = {"name": "bad", "cron": "61 * * * *", "job": {"kind": "train", "entry": "noop"}}
        answer = http.post("/api/v1/schedules", json=body)
        assert answer.status_code == 422
        error = answer.json()["error"]
        assert error["code"] == "unprocessable"
        assert error["message"] == "cron: '61 * * * *' is not a valid cron expression"
        both = {**body, "cron": "* * * * *", "pipeline": "p"}
        assert http.post("/api/v1/schedules", json=both).status_code == 422
        assert http.get("/api/v1/schedules").json() == []


def test_the_sdk_creates_changes_and_deletes_schedules(client: aimass.Client) -> None:
    created = client.schedules.create(
        "nightly", "0 3 * * *", entry="noop", params={"sleep_s": 0}, timezone="Europe/Paris"
    )
    assert created.job is not None and created.job.entry == "noop"
    assert created.next_run_at is not None and created.enabled
    with pytest.raises(Conflict):
        client.schedules.create("nightly", "0 3 * * *", entry="noop")
    with pytest.raises(Unprocessable, match="timezone: unknown time zone"):
        client.schedules.create("tz", "0 3 * * *", entry="noop", timezone="Nowhere/Land")
    with pytest.raises(Unprocessable, match=r"params\.sleep_s"):
        client.schedules.create("p", "0 3 * * *", entry="noop", params={"sleep_s": "long"})
    with pytest.raises(InvalidInput, match="exactly one"):
        client.schedules.create("none", "0 3 * * *")
    assert client.schedules.disable("nightly").next_run_at is None
    enabled = client.schedules.enable("nightly")
    assert enabled.enabled and enabled.next_run_at is not None
    moved = client.schedules.update("nightly", cron="30 4 * * *")
    assert moved.cron == "30 4 * * *"
    assert [s.name for s in client.schedules.list()] == ["nightly"]
    client.schedules.delete("nightly")
    with pytest.raises(NotFound):
        client.schedules.get("nightly")


def test_a_due_schedule_fires_its_job_on_the_server(
    client: aimass.Client, live_server: LiveServer
) -> None:
    # Once a year, so the clock cannot make it due during the test (a "*/5" schedule
    # created just before a five-minute mark fired once by the clock, once by the test).
    created = client.schedules.create("soon", "0 0 1 1 *", entry="noop")
    # Make it due now rather than waiting for the clock: the server's loop fires it.
    db = Database(live_server.settings.resolved_database_url)
    try:
        with db.session() as session:
            session.execute(
                update(ScheduleRow)
                .where(ScheduleRow.id == created.id)
                .values(next_run_at=utcnow() - timedelta(minutes=1))
            )
    finally:
        db.close()
    deadline = time.monotonic() + 30
    while (fired := client.schedules.get("soon")).last_job_id is None:
        assert time.monotonic() < deadline, fired
        time.sleep(0.1)
    assert fired.next_run_at is not None and fired.next_run_at > utcnow()
    job = client.jobs.wait(fired.last_job_id or 0, timeout=30)
    assert (job.entry, job.state) == ("noop", "succeeded")
    assert len(client.jobs.list()) == 1


@pytest.fixture
def aimass_cli(live_server: LiveServer) -> CliRunnerCall:
    return CliRunnerCall(live_server)


def test_cli_manages_schedules(aimass_cli: CliRunnerCall) -> None:
    out, _ = aimass_cli(
        "schedules", "create", "hourly", "--cron", "0 * * * *", "--entry", "noop", "-p", "sleep_s=1"
    )
    assert "created schedule hourly: 0 * * * * (UTC) starts train noop" in out
    listed = json.loads(aimass_cli("schedules", "list", "--json")[0])
    assert [s["name"] for s in listed] == ["hourly"]
    assert listed[0]["job"]["params"] == {"sleep_s": 1}
    table, _ = aimass_cli("schedules", "list")
    assert "hourly" in table
    shown, _ = aimass_cli("schedules", "show", "hourly")
    assert "next: " in shown and '"sleep_s": 1' in shown
    out, _ = aimass_cli("schedules", "disable", "hourly")
    assert "next disabled" in out
    out, _ = aimass_cli("schedules", "enable", "hourly")
    assert "next 20" in out
    out, _ = aimass_cli("schedules", "update", "hourly", "--cron", "15 * * * *")
    assert "15 * * * *" in out
    _, err = aimass_cli("schedules", "create", "bad", "--cron", "* *", "--entry", "noop", code=1)
    assert err.startswith("error: cron: '* *' has 2 field(s)")
    _, err = aimass_cli("schedules", "create", "x", "--cron", "* * * * *", code=2)
    out, _ = aimass_cli("schedules", "delete", "hourly", "--yes")
    assert "deleted schedule hourly" in out
    assert json.loads(aimass_cli("schedules", "list", "--json")[0]) == []
