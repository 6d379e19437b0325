"""``aimass jobs`` against a real server, and the text helpers behind it."""

from __future__ import annotations

import json
import textwrap
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import get_args

import pytest
import typer
from tests.cli.test_models import CliRunnerCall
from tests.conftest import LiveServer, start_server

from aimass.cli import jobs as jobs_cli
from aimass.cli._job_format import describe_params, metric_series, parse_params, trend
from aimass.config import Settings
from aimass.jobs.entities import JobKind, JobMetric, JobState
from jobs.conftest import job_settings

pytestmark = pytest.mark.backend("postgresql")  # slow end to end: one backend (tests/conftest.py)

UNPLACEABLE = "1000"  # CPUs: the job stays queued


@pytest.fixture
def aimass(live_server: LiveServer) -> CliRunnerCall:
    return CliRunnerCall(live_server)


@pytest.fixture
def runs(settings: Settings) -> Iterator[CliRunnerCall]:
    """``aimass`` against a live server whose scheduler runs jobs (local executor)."""
    for server in start_server(job_settings(settings)):
        yield CliRunnerCall(server)


def _one_error_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("error: ")
    assert "Traceback" not in err
    return lines[0]


def _script(path: Path, body: str) -> Path:
    path.write_text(textwrap.dedent(body))
    return path


def test_params_parse_as_json_when_they_can() -> None:
    params = parse_params(
        ["C=0.5", "name=abc", "on=true", "layers=[64, 32]", "x=NaN", "empty="],
        '{"C": 1, "seed": 3}',
    )
    assert params == {
        "C": 0.5,
        "seed": 3,
        "name": "abc",
        "on": True,
        "layers": [64, 32],
        "x": "NaN",
        "empty": "",
    }
    with pytest.raises(typer.BadParameter, match="JSON object"):
        parse_params(None, "[1, 2]")
    with pytest.raises(typer.BadParameter, match="not JSON"):
        parse_params(None, "{oops")
    with pytest.raises(typer.BadParameter, match="KEY=VALUE"):
        parse_params(["novalue"], None)


def test_trend_spans_lowest_to_highest_and_keeps_its_width() -> None:
    assert trend([1.0, 0.5, 0.25, 0.0]) == "█▅▃▁"
    assert trend([2.0]) == ""
    assert trend([3.0, 3.0]) == "▄▄"
    assert len(trend([float(i) for i in range(1000)], width=24)) == 24


def test_metric_series_keeps_the_latest_attempts_value_per_step() -> None:
    at = datetime(2026, 1, 1, tzinfo=UTC)

    def point(attempt: int, step: int, value: float, seconds: int) -> JobMetric:
        return JobMetric(
            attempt=attempt, name="loss", step=step, value=value, at=at + timedelta(seconds=seconds)
        )

    points = [point(1, 0, 4.0, 0), point(1, 1, 3.0, 1), point(1, 2, 2.5, 2), point(2, 1, 2.0, 3)]
    latest, values = metric_series(points)["loss"]
    assert (latest.attempt, latest.step, latest.value) == (2, 1, 2.0)
    assert values == [4.0, 2.0, 2.5]


def test_params_schema_reads_as_name_type_default() -> None:
    schema = {
        "properties": {
            "epochs": {"type": "integer", "default": 20, "description": "passes"},
            "target": {"anyOf": [{"type": "string"}, {"type": "null"}], "default": None},
            "model": {"type": "string"},
            "mode": {"enum": ["a", "b"], "default": "a"},
        },
        "required": ["model"],
    }
    assert describe_params(schema) == [
        "epochs: integer = 20  (passes)",
        "target: string | null = null",
        "model: string (required)",
        'mode: "a"|"b" = "a"',
    ]


def test_cli_kinds_and_states_match_the_entities() -> None:
    assert get_args(jobs_cli.Kind) == get_args(JobKind)
    assert get_args(jobs_cli.State) == get_args(JobState)


def test_submit_list_show_and_cancel_a_queued_job(aimass: CliRunnerCall) -> None:
    out, _ = aimass("jobs", "submit", "noop", "--param", "sleep_s=0", "--cpu", UNPLACEABLE)
    assert "submitted (train noop), queued" in out
    job_id = int(out.split()[1])
    listed = json.loads(aimass("jobs", "list", "--json")[0])
    assert [(j["id"], j["state"]) for j in listed] == [(job_id, "queued")]
    table, _ = aimass("jobs", "list", "--state", "queued")
    assert "noop" in table
    assert "noop" not in aimass("jobs", "list", "--state", "running")[0]
    shown, _ = aimass("jobs", "show", str(job_id))
    assert "train noop" in shown
    assert "timeline" in shown
    assert "sleep_s=0.0" in shown

    assert aimass("jobs", "cancel", str(job_id))[0].strip() == f"job {job_id} cancelled"
    detail = json.loads(aimass("jobs", "show", str(job_id), "--json")[0])
    assert detail["job"]["state"] == "cancelled"
    assert [e["state"] for e in detail["events"]][-1] == "cancelled"
    assert f"job {job_id} cancelled" in aimass("jobs", "wait", str(job_id), code=1)[0]
    assert json.loads(aimass("jobs", "wait", str(job_id), "--json", code=1)[0])["id"] == job_id
    assert aimass("jobs", "retry", str(job_id))[0].strip() == f"job {job_id} queued again"
    out, err = aimass("jobs", "retry", str(job_id), code=1)
    assert out == ""
    assert "queued" in _one_error_line(err)
    aimass("jobs", "cancel", str(job_id))


def test_unknown_entry_and_job_are_one_line_and_exit_1(aimass: CliRunnerCall) -> None:
    out, err = aimass("jobs", "submit", "ghost", code=1)
    assert out == ""
    assert "unknown entry 'ghost'" in _one_error_line(err)
    _, err = aimass("jobs", "show", "999999", code=1)
    _one_error_line(err)
    _, err = aimass("jobs", "submit", "noop", "--kind", "sing", code=2)
    assert "sing" in err


def test_entries_show_params_and_defaults(aimass: CliRunnerCall) -> None:
    table, _ = aimass("jobs", "entries")
    assert "noop" in table
    assert "sleep_s: number = 0.0" in table
    found = json.loads(aimass("jobs", "entries", "--json")[0])
    assert "noop" in {e["name"] for e in found}


def test_wait_times_out_with_one_line(aimass: CliRunnerCall) -> None:
    out, _ = aimass("jobs", "submit", "noop", "--cpu", UNPLACEABLE, "--json")
    job_id = str(json.loads(out)["id"])
    _, err = aimass("jobs", "wait", job_id, "--timeout", "0.2", code=1)
    assert "still queued" in _one_error_line(err)
    aimass("jobs", "cancel", job_id)


def test_submit_a_script_and_follow_it(runs: CliRunnerCall, tmp_path: Path) -> None:
    script = _script(
        tmp_path / "hello.py",
        """
        from aimass import runtime


        def main(params):
            ctx = runtime.context()
            for step in range(5):
                ctx.log_metric("loss", 1.0 / (step + 1), step=step)
                print(f"hello {params['who']} {step}", flush=True)
            return {"said": 5}
        """,
    )
    out, err = runs(
        "jobs", "submit", "hello.py:main", "--script", str(script), "-p", "who=you", "-f"
    )
    assert [f"hello you {i}" for i in range(5)] == [x for x in out.splitlines() if "hello" in x]
    assert "succeeded" in err.splitlines()[-1]
    job_id = err.split()[1]
    assert "hello you 4" in runs("jobs", "logs", job_id)[0]
    followed, _ = runs("jobs", "logs", job_id, "-f")
    assert "hello you 0" in followed
    table, _ = runs("jobs", "metrics", job_id)
    assert "loss" in table
    assert "0.2" in table  # the latest value, 1/5
    assert "█▄" in table  # the trend over steps
    assert len(json.loads(runs("jobs", "metrics", job_id, "--json")[0])) == 5
    assert "succeeded" in runs("jobs", "wait", job_id)[0]


def test_a_failing_script_exits_1(runs: CliRunnerCall, tmp_path: Path) -> None:
    script = _script(
        tmp_path / "broken.py",
        """
        def main(params):
            print("about to fail", flush=True)
            raise RuntimeError("no data today")
        """,
    )
    out, err = runs("jobs", "submit", "broken.py:main", "--script", str(script), "-f", code=1)
    assert "about to fail" in out
    assert "failed" in err.splitlines()[-1]
    assert "no data today" in out + err


def test_noop_follows_to_success_with_json(runs: CliRunnerCall) -> None:
    out, _ = runs("jobs", "submit", "noop", "-f", "--json")
    assert json.loads(out)["state"] == "succeeded"


def test_follow_marks_each_new_attempt(runs: CliRunnerCall, tmp_path: Path) -> None:
    script = _script(
        tmp_path / "flaky.py",
        """
        import os


        def main(params):
            attempt = os.environ["AIMASS_JOB_ATTEMPT"]
            print(f"try {attempt}", flush=True)
            if attempt == "1":
                raise RuntimeError("first try fails")
        """,
    )
    out, err = runs(
        "jobs", "submit", "flaky.py:main", "--script", str(script), "--max-retries", "1", "-f"
    )
    lines = out.splitlines()
    assert lines.index("try 1") < lines.index("── attempt 2 ──") < lines.index("try 2")
    assert "succeeded" in err.splitlines()[-1]
    job_id = err.split()[1]
    assert "try 1" in runs("jobs", "logs", job_id, "--attempt", "1")[0]
    assert "try 1" not in runs("jobs", "logs", job_id)[0]


def test_submit_infers_the_kind_from_the_entry(aimass: CliRunnerCall) -> None:
    out, _ = aimass(
        "jobs", "submit", "evaluate", "-p", "model=iris", "--dataset", "iris", "--cpu", UNPLACEABLE
    )
    assert "submitted (evaluate evaluate), queued" in out
    job_id = out.split()[1]
    shown, _ = aimass("jobs", "show", job_id)
    assert "dataset: iris, " in shown and "vlatest" not in shown
    aimass("jobs", "cancel", job_id)


def test_a_server_without_jobs_says_so(aimass: CliRunnerCall) -> None:
    # live_server runs no scheduler (started as with --no-jobs)
    out, _ = aimass("jobs", "submit", "noop")
    assert "queued: no scheduler is running on this server (started with --no-jobs)" in out
    job_id = out.split()[1]
    assert "reason: no scheduler is running on this server" in aimass("jobs", "show", job_id)[0]
    aimass("jobs", "cancel", job_id)


def test_cancel_says_cancelling_until_the_job_stops(runs: CliRunnerCall) -> None:
    out, _ = runs("jobs", "submit", "noop", "--param", "sleep_s=30", "--json")
    job_id = str(json.loads(out)["id"])
    deadline = time.monotonic() + 30
    while json.loads(runs("jobs", "show", job_id, "--json")[0])["job"]["state"] != "running":
        assert time.monotonic() < deadline, "the job did not start"
        time.sleep(0.1)
    said, _ = runs("jobs", "cancel", job_id)
    assert said.strip() == f"job {job_id} cancelling (it is running until it stops)"
    assert f"job {job_id} cancelled" in runs("jobs", "wait", job_id, code=1)[0]
