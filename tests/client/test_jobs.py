"""The SDK's job calls against a real server: submit, list, cancel, retry, wait, follow logs."""

from __future__ import annotations

import tarfile
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.conftest import free_port, start_server

from aimass import Client
from aimass.client import AttemptStarted, JobTimeout, LogEnd, LogLine
from aimass.client.jobs import pack_source
from aimass.config import Settings
from aimass.errors import Conflict, InvalidInput, NotFound, Unprocessable
from jobs.conftest import job_settings

pytestmark = pytest.mark.backend("sqlite")  # slow end to end: one backend (tests/conftest.py)

#: More CPUs than any test machine has: such a job stays queued, with a reason.
UNPLACEABLE = 1000.0


@pytest.fixture
def runner(settings: Settings) -> Iterator[Client]:
    """A client of a live server whose scheduler runs jobs (local executor, two slots)."""
    for server in start_server(job_settings(settings)):
        with Client(url=server.url, token=server.admin_token) as client:
            yield client


def write_script(path: Path, body: str) -> Path:
    """A user's script file, dedented."""
    path.write_text(textwrap.dedent(body))
    return path


def test_pack_source_leaves_out_caches_vcs_and_links(tmp_path: Path) -> None:
    code = tmp_path / "project"
    (code / "pkg" / "__pycache__").mkdir(parents=True)
    (code / ".git").mkdir()
    (code / ".venv" / "lib").mkdir(parents=True)
    (code / "train.py").write_text("def main(params): return {}\n")
    (code / "pkg" / "__init__.py").write_text("")
    (code / "pkg" / "__pycache__" / "x.cpython-311.pyc").write_bytes(b"\0")
    (code / ".git" / "HEAD").write_text("ref: main\n")
    (code / ".venv" / "lib" / "site.py").write_text("")
    (code / "secret").symlink_to("/etc/passwd")
    packed = pack_source(code, tmp_path / "code.tar.gz")
    with tarfile.open(packed) as archive:
        names = sorted(archive.getnames())
        assert all(m.isfile() or m.isdir() for m in archive.getmembers())
    assert names == ["pkg", "pkg/__init__.py", "train.py"]


def test_bad_arguments_fail_before_anything_is_sent(tmp_path: Path) -> None:
    # Nobody listens there: any request would raise ServerUnreachable instead.
    with Client(url=f"http://127.0.0.1:{free_port()}", token="unused") as client:
        with pytest.raises(InvalidInput, match="cpu"):
            client.jobs.submit("noop", cpu=0)
        with pytest.raises(InvalidInput, match="kind"):
            client.jobs.submit("noop", kind="sing")  # type: ignore[arg-type]
        with pytest.raises(InvalidInput, match="max_retries"):
            client.jobs.submit("noop", max_retries=-1)
        notes = tmp_path / "notes.txt"
        notes.write_text("not code")
        with pytest.raises(InvalidInput, match=r"\.py file"):
            client.jobs.submit_script(notes, "notes:main")


def test_submit_list_get_cancel_and_retry_a_queued_job(client: Client) -> None:
    job = client.jobs.submit("noop", params={"sleep_s": 0}, cpu=UNPLACEABLE, priority=5)
    assert (job.kind, job.entry, job.state, job.priority) == ("train", "noop", "queued", 5)
    assert job.params == {"sleep_s": 0.0}
    assert job.resources.cpu == UNPLACEABLE
    assert [j.id for j in client.jobs.list()] == [job.id]
    assert client.jobs.list(state="running") == []
    assert [j.id for j in client.jobs.list(kind="train", state="queued")] == [job.id]
    assert client.jobs.get(job.id).entry == "noop"

    cancelled = client.jobs.cancel(job.id)
    assert cancelled.state == "cancelled"
    assert client.jobs.wait(job.id, timeout=5).state == "cancelled"
    assert client.jobs.cancel(job.id).state == "cancelled"  # a second cancel changes nothing
    assert [e.state for e in client.jobs.events(job.id)][-1] == "cancelled"

    again = client.jobs.retry(job.id)
    assert again.state == "queued"
    with pytest.raises(Conflict):
        client.jobs.retry(job.id)
    client.jobs.cancel(job.id)


def test_unknown_entries_params_and_jobs_are_refused_with_the_servers_words(
    client: Client,
) -> None:
    with pytest.raises(Unprocessable, match="ghost") as refused:
        client.jobs.submit("ghost")
    assert refused.value.status == 422
    with pytest.raises(Unprocessable, match="sleep_s"):
        client.jobs.submit("noop", params={"sleep_s": "long"})
    with pytest.raises(NotFound):
        client.jobs.get(999_999)
    with pytest.raises(NotFound):
        client.jobs.cancel(999_999)
    with pytest.raises(NotFound):
        next(client.jobs.follow_logs(999_999))
    names = {e["name"] for e in client.jobs.entries()}
    assert "noop" in names


def test_wait_gives_up_on_a_job_that_cannot_be_placed(client: Client) -> None:
    job = client.jobs.submit("noop", cpu=UNPLACEABLE)
    with pytest.raises(JobTimeout, match="still queued") as timed_out:
        client.jobs.wait(job.id, timeout=0.3)
    assert isinstance(timed_out.value, TimeoutError)
    client.jobs.cancel(job.id)


def test_noop_runs_to_success(runner: Client) -> None:
    job = runner.jobs.submit("noop")
    done = runner.jobs.wait(job.id, timeout=60)
    assert done.state == "succeeded", done.reason
    assert done.attempt == 1
    states = [e.state for e in runner.jobs.events(job.id)]
    assert states[0] == "queued"
    assert states[-2:] == ["running", "succeeded"]
    with pytest.raises(Conflict, match="succeeded"):
        runner.jobs.cancel(job.id)
    with pytest.raises(Conflict):
        runner.jobs.retry(job.id)


def test_follow_logs_streams_a_script_and_ends_with_the_job(runner: Client, tmp_path: Path) -> None:
    script = write_script(
        tmp_path / "count.py",
        """
        def main(params):
            for i in range(params["n"]):
                print(f"line {i}", flush=True)
            return {"counted": params["n"]}
        """,
    )
    job = runner.jobs.submit_script(script, "count.py:main", params={"n": 5})
    assert (job.kind, job.source) == ("script", "count.py")
    events = list(runner.jobs.follow_logs(job.id))
    assert isinstance(events[0], AttemptStarted)
    assert events[0].attempt == 1
    end = events[-1]
    assert isinstance(end, LogEnd)
    assert end.job.state == "succeeded", end.job.reason
    assert end.job.outputs["counted"] == 5
    lines = [e.line for e in events if isinstance(e, LogLine)]
    assert [f"line {i}" for i in range(5)] == [x for x in lines if x.startswith("line ")]
    assert "line 4" in runner.jobs.logs(job.id)
    assert "line 0" in runner.jobs.logs(job.id, attempt=1)


def test_a_folder_is_packed_and_its_metrics_and_artifacts_come_back(
    runner: Client, tmp_path: Path
) -> None:
    code = tmp_path / "project"
    (code / "pkg").mkdir(parents=True)
    (code / "pkg" / "__init__.py").write_text("")
    write_script(
        code / "pkg" / "train.py",
        """
        from pathlib import Path

        from aimass import runtime


        def main(params):
            ctx = runtime.context()
            for step in range(4):
                ctx.log_metric("loss", 1.0 / (step + 1), step=step)
            report = Path(ctx.scratch) / "report.txt"
            report.write_text("all good")
            ctx.log_artifact(report)
            return {"steps": 4}
        """,
    )
    job = runner.jobs.submit_script(code, "pkg.train:main")
    done = runner.jobs.wait(job.id, timeout=60)
    assert done.state == "succeeded", (done.reason, runner.jobs.logs(job.id))
    losses = runner.jobs.metrics(job.id, name="loss")
    assert [(m.step, m.value) for m in losses] == [(s, 1.0 / (s + 1)) for s in range(4)]
    artifacts = runner.jobs.artifacts(job.id)
    assert [a.name for a in artifacts] == ["report.txt"]
    copy = runner.jobs.download_artifact(job.id, "report.txt", tmp_path / "out/")
    assert copy.read_text() == "all good"


def test_a_failing_script_fails_with_its_error(runner: Client, tmp_path: Path) -> None:
    script = write_script(
        tmp_path / "broken.py",
        """
        def main(params):
            raise ValueError("the data is wrong")
        """,
    )
    job = runner.jobs.submit_script(script, "broken.py:main")
    done = runner.jobs.wait(job.id, timeout=60)
    assert done.state == "failed"
    assert "the data is wrong" in (done.reason or "") + runner.jobs.logs(job.id)
