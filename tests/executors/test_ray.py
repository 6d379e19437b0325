"""RayExecutor on a real local Ray: placement options, exits, cancellation, log shipping."""

from __future__ import annotations

import os
import signal
import tempfile
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

ray = pytest.importorskip("ray")

from aimass.executors.base import AttemptExit, AttemptSpec  # noqa: E402
from aimass.executors.ray import RayExecutor, ray_capacity  # noqa: E402
from aimass.jobs.entities import Resources  # noqa: E402

pytestmark = pytest.mark.slow

HERE = Path(__file__).parent
TARGETS = {
    name: f"job_targets:{name}" for name in ("noop", "describe", "fail", "sleep", "spawn_and_sleep")
}
TARGETS["broken"] = "job_targets:no_such_function"
TARGETS["chatter"] = "ray_targets:chatter"


class Exits:
    """Collects ``on_exit`` reports; ``wait`` blocks until a job's report arrives."""

    def __init__(self) -> None:
        self.reports: dict[int, AttemptExit] = {}
        self._cond = threading.Condition()

    def add(self, exit_: AttemptExit) -> None:
        with self._cond:
            assert exit_.job_id not in self.reports, "reported twice"
            self.reports[exit_.job_id] = exit_
            self._cond.notify_all()

    def wait(self, job_id: int, timeout: float = 30.0) -> AttemptExit:
        with self._cond:
            assert self._cond.wait_for(lambda: job_id in self.reports, timeout), job_id
            return self.reports[job_id]


def _spec(
    tmp_path: Path,
    job_id: int,
    entry: str,
    params: dict[str, Any] | None = None,
    env: dict[str, str] | None = None,
    **resources: float,
) -> AttemptSpec:
    return AttemptSpec(
        job_id=job_id,
        attempt=1,
        project="default",
        entry=entry,
        params=params or {},
        resources=Resources.model_validate(resources),
        scratch_dir=tmp_path / "scratch" / f"job-{job_id}-attempt-1",
        env={"EXTRA": "yes", **(env or {})},
    )


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state not in ("Z", "X")


def _ray_worker_of(pid: int) -> int:
    """The Ray worker process above ``pid`` (the attempt runs under its zygote)."""
    while not Path(f"/proc/{pid}/cmdline").read_bytes().startswith(b"ray::"):
        pid = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
        assert pid > 1, "no Ray worker above the attempt"
    return pid


def _wait_for_pids(pids_file: Path) -> tuple[int, int, str]:
    deadline = time.monotonic() + 30
    while not pids_file.exists() or len(pids_file.read_text().split()) < 3:
        assert time.monotonic() < deadline
        time.sleep(0.02)
    child, grandchild, scratch = pids_file.read_text().split()
    return int(child), int(grandchild), scratch


def test_an_executor_starts_and_stops_its_own_ray(tmp_path: Path) -> None:
    if ray.is_initialized():
        pytest.skip("Ray was started by another test")
    executor = RayExecutor(TARGETS, python_path=[HERE], init_kwargs={"num_cpus": 1})
    exits = Exits()
    executor.on_exit = exits.add
    try:
        assert ray.is_initialized() and ray_capacity().cpu == 1
        executor.submit(_spec(tmp_path, 1, "noop"))
        assert exits.wait(1).outputs == {"ok": True}
    finally:
        executor.close()
    assert not ray.is_initialized()


@pytest.fixture(scope="module")
def ray_cluster() -> Iterator[None]:
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


@pytest.fixture
def executor(ray_cluster: None, tmp_path: Path) -> Iterator[tuple[RayExecutor, Exits]]:
    executor = RayExecutor(TARGETS, python_path=[HERE], log_dir=tmp_path / "logs", kill_grace_s=1.0)
    exits = Exits()
    executor.on_exit = exits.add
    yield executor, exits
    executor.close()
    assert ray.is_initialized(), "close stopped a Ray it did not start"


def test_an_attempt_runs_its_target_in_its_own_session_and_scratch(
    executor: tuple[RayExecutor, Exits], tmp_path: Path
) -> None:
    ex, exits = executor
    spec = _spec(tmp_path, 1, "describe", {"x": 1}, cpu=1.5)
    ex.submit(spec)
    assert ex.active() == [(1, 1)]
    report = exits.wait(1)
    assert report.returncode == 0 and report.error is None and not report.cancelled
    out = report.outputs
    assert out is not None
    assert out["env"] == {
        "OMP_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
        "OPENBLAS_NUM_THREADS": "1",
        "CUDA_VISIBLE_DEVICES": "",
        "AIMASS_JOB_ID": "1",
        "AIMASS_JOB_ATTEMPT": "1",
        "EXTRA": "yes",
    }
    assert out["cwd"] == out["scratch"] == str(spec.scratch_dir)
    assert out["scratch_mode"] == 0o700
    assert out["pid"] == out["pgid"] == out["sid"]
    assert out["params"] == {"x": 1}
    assert not spec.scratch_dir.exists()
    # No server to ship to: the log's tail comes back to the driver's log folder.
    assert "hello from the attempt" in (tmp_path / "logs/job-1/attempt-1.log").read_text()
    assert ex.active() == []


def test_failures_report_their_reason(executor: tuple[RayExecutor, Exits], tmp_path: Path) -> None:
    ex, exits = executor
    ex.submit(_spec(tmp_path, 1, "fail", {"x": 3}, cpu=0.5))
    ex.submit(_spec(tmp_path, 2, "broken", cpu=0.5))
    failed, broken = exits.wait(1), exits.wait(2)
    assert (failed.returncode, failed.error) == (1, "ValueError: bad input 3")
    assert not failed.infra_failure
    assert broken.returncode == 2
    assert "cannot import 'job_targets:no_such_function'" in (broken.error or "")
    with pytest.raises(RuntimeError, match="no Ray target"):
        ex.submit(_spec(tmp_path, 3, "unknown"))


def test_attempts_hold_their_resources(executor: tuple[RayExecutor, Exits], tmp_path: Path) -> None:
    ex, exits = executor
    memory_mb = ray_capacity().memory_mb
    assert memory_mb is not None
    ex.submit(_spec(tmp_path, 3, "noop", memory_mb=memory_mb * 2))  # more than the cluster has
    ex.submit(_spec(tmp_path, 1, "sleep", {"seconds": 0.5}, cpu=2))
    ex.submit(_spec(tmp_path, 2, "sleep", {"seconds": 0.5}, cpu=2))
    first, second = exits.wait(1).outputs, exits.wait(2).outputs
    assert first is not None and second is not None
    spans = sorted([(first["start"], first["end"]), (second["start"], second["end"])])
    assert spans[0][1] <= spans[1][0], "two 2-CPU attempts overlapped on a 2-CPU cluster"
    assert ex.active() == [(3, 1)], "an attempt ran without the memory it asked for"
    ex.cancel(3)
    queued = exits.wait(3, timeout=5)
    assert queued.cancelled and queued.returncode == -signal.SIGTERM and queued.outputs is None


def test_cancel_ends_the_whole_tree_and_removes_scratch(
    executor: tuple[RayExecutor, Exits], tmp_path: Path
) -> None:
    ex, exits = executor
    pids_file = tmp_path / "pids"
    spec = _spec(tmp_path, 1, "spawn_and_sleep", {"pids_file": str(pids_file)})
    ex.submit(spec)
    child, grandchild, scratch = _wait_for_pids(pids_file)
    assert scratch == str(spec.scratch_dir) and spec.scratch_dir.is_dir()
    assert _alive(child) and _alive(grandchild)
    started = time.monotonic()
    ex.cancel(1)
    report = exits.wait(1, timeout=5)
    while _alive(child) or _alive(grandchild):
        assert time.monotonic() - started < 5, "processes outlived the cancel"
        time.sleep(0.02)
    assert report.cancelled and report.returncode == -signal.SIGTERM
    assert not spec.scratch_dir.exists()
    assert ex.active() == []


def test_a_worker_killed_from_outside_is_an_infrastructure_failure(
    executor: tuple[RayExecutor, Exits], tmp_path: Path
) -> None:
    ex, exits = executor
    pids_file = tmp_path / "pids"
    spec = _spec(tmp_path, 1, "spawn_and_sleep", {"pids_file": str(pids_file)})
    ex.submit(spec)
    child, grandchild, _ = _wait_for_pids(pids_file)
    try:
        os.kill(_ray_worker_of(child), signal.SIGKILL)  # the Ray worker running the task
        report = exits.wait(1)
        assert report.returncode == -signal.SIGKILL and report.infra_failure
        assert report.error
        deadline = time.monotonic() + 5
        while _alive(child) or _alive(grandchild):  # the tree dies with its worker
            assert time.monotonic() < deadline, "processes outlived their worker"
            time.sleep(0.02)
        assert not spec.scratch_dir.exists()
        assert not list(Path(tempfile.gettempdir()).glob("aimass-attempt-1-1-*"))
    finally:
        if _alive(grandchild):
            os.kill(grandchild, signal.SIGKILL)


def test_a_task_that_ignores_the_interrupt_loses_its_worker(
    executor: tuple[RayExecutor, Exits], tmp_path: Path
) -> None:
    ex, exits = executor
    pids_file = tmp_path / "pids"
    spec = _spec(tmp_path, 1, "spawn_and_sleep", {"pids_file": str(pids_file)})
    ex.submit(spec)
    child, grandchild, _ = _wait_for_pids(pids_file)
    try:
        attempt = ex._attempts[(1, 1)]  # what cancel does when the interrupt did not end the task
        attempt.cancelled = True
        ex._force(attempt)
        report = exits.wait(1, timeout=10)
        assert report.cancelled and report.returncode == -signal.SIGKILL
        assert not report.infra_failure
        deadline = time.monotonic() + 5
        while _alive(child) or _alive(grandchild):  # the tree dies with its worker
            assert time.monotonic() < deadline, "processes outlived their worker"
            time.sleep(0.02)
        assert not spec.scratch_dir.exists()
    finally:
        if _alive(grandchild):
            os.kill(grandchild, signal.SIGKILL)


class _LogReceiver:
    """A tiny HTTP server standing in for the aimass server's log route."""

    def __init__(self, answers: dict[str, list[int]]) -> None:
        self.posts: list[tuple[str, str | None, str | None, bytes]] = []
        self.answers = answers  # path -> status codes to give first (then 204)
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                queued = receiver.answers.get(self.path, [])
                status = queued.pop(0) if queued else 204
                if status == 204:
                    receiver.posts.append(
                        (
                            self.path,
                            self.headers["Authorization"],
                            self.headers["Content-Type"],
                            body,
                        )
                    )
                else:
                    receiver.posts.append((self.path, "refused", str(status), b""))
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def body(self, path: str) -> bytes:
        return b"".join(p[3] for p in self.posts if p[0] == path and p[1] != "refused")

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_logs_ship_to_the_server_while_the_attempt_runs(
    executor: tuple[RayExecutor, Exits], tmp_path: Path
) -> None:
    ex, exits = executor
    first, second = "/api/v1/jobs/1/attempts/1/logs", "/api/v1/jobs/2/attempts/1/logs"
    # The first post for job 1 fails (kept and sent again); job 2 is no longer current (409).
    receiver = _LogReceiver({first: [500], second: [409]})
    env = {"AIMASS_URL": receiver.url + "/", "AIMASS_TOKEN": "tok"}
    try:
        ex.submit(_spec(tmp_path, 1, "chatter", {"lines": 6, "every": 0.15}, env, cpu=0.5))
        ex.submit(_spec(tmp_path, 2, "chatter", {"lines": 3, "every": 0.1}, env, cpu=0.5))
        one, two = exits.wait(1), exits.wait(2)
    finally:
        receiver.close()
    assert one.returncode == 0 and one.outputs == {"printed": 6}
    assert two.returncode == 0 and two.outputs == {"printed": 3}
    expected = "".join(f"line {i} ✓\n" for i in range(6))
    assert receiver.body(first).decode() == expected
    shipped = [p for p in receiver.posts if p[0] == first and p[1] != "refused"]
    assert len(shipped) >= 2, "the log should ship while the attempt runs, not only at its end"
    assert {(p[1], p[2]) for p in shipped} == {("Bearer tok", "application/octet-stream")}
    assert [p[1] for p in receiver.posts if p[0] == second] == ["refused"]
    assert not (tmp_path / "logs").exists(), "shipped logs are not also kept on the driver"


def test_ray_capacity_is_the_clusters(ray_cluster: None) -> None:
    capacity = ray_capacity()
    assert capacity.cpu == 2 and capacity.gpu == 0
    assert capacity.memory_mb is not None and capacity.memory_mb > 0


def test_close_cancels_running_attempts(ray_cluster: None, tmp_path: Path) -> None:
    executor = RayExecutor(TARGETS, python_path=[HERE], kill_grace_s=1.0)
    exits = Exits()
    executor.on_exit = exits.add
    pids_file = tmp_path / "pids"
    executor.submit(_spec(tmp_path, 1, "spawn_and_sleep", {"pids_file": str(pids_file)}))
    _wait_for_pids(pids_file)  # running: a fixed sleep raced a slow start on a loaded machine
    # Submitted once attempt 1 holds one of the two CPUs, so it stays queued. Submitted beside
    # it, Ray could start it first (different resource shapes have no order between them):
    # it took both CPUs for 60 s and attempt 1 never started (a CI failure).
    executor.submit(_spec(tmp_path, 2, "sleep", {"seconds": 60}, cpu=2))
    executor.close()
    running, queued = exits.wait(1, timeout=1), exits.wait(2, timeout=1)
    assert running.cancelled and running.returncode == -signal.SIGTERM
    assert queued.cancelled and queued.returncode == -signal.SIGTERM
    assert ray.is_initialized()
    with pytest.raises(RuntimeError, match="closed"):
        executor.submit(_spec(tmp_path, 3, "noop"))
