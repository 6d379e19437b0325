"""LocalExecutor with real processes: isolation, exits, cancellation of a whole tree."""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from aimass.executors.base import AttemptExit, AttemptSpec
from aimass.executors.local import LocalExecutor
from aimass.jobs.entities import Resources

pytestmark = pytest.mark.slow

HERE = Path(__file__).parent
TARGETS = {
    name: f"job_targets:{name}" for name in ("noop", "describe", "fail", "sleep", "spawn_and_sleep")
}
TARGETS["broken"] = "job_targets:no_such_function"


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

    def wait(self, job_id: int, timeout: float = 20.0) -> AttemptExit:
        with self._cond:
            assert self._cond.wait_for(lambda: job_id in self.reports, timeout), job_id
            return self.reports[job_id]


@pytest.fixture
def local(tmp_path: Path) -> Iterator[tuple[LocalExecutor, Exits]]:
    executor = LocalExecutor(
        TARGETS, gpus=["0", "1"], python_path=[HERE], log_dir=tmp_path / "logs"
    )
    exits = Exits()
    executor.on_exit = exits.add
    yield executor, exits
    executor.close()


def _spec(
    tmp_path: Path, job_id: int, entry: str, params: dict | None = None, **resources: float
) -> AttemptSpec:
    return AttemptSpec(
        job_id=job_id,
        attempt=1,
        project="default",
        entry=entry,
        params=params or {},
        resources=Resources.model_validate(resources),
        scratch_dir=tmp_path / "scratch" / f"job-{job_id}-attempt-1",
        env={"EXTRA": "yes"},
    )


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state not in ("Z", "X")


def test_an_attempt_runs_in_its_own_session_and_scratch(
    local: tuple[LocalExecutor, Exits], tmp_path: Path
) -> None:
    executor, exits = local
    spec = _spec(tmp_path, 1, "describe", {"x": 1}, cpu=2.5)
    executor.submit(spec)
    report = exits.wait(1)
    assert report.returncode == 0 and report.error is None and not report.cancelled
    out = report.outputs
    assert out is not None
    assert out["env"] == {
        "OMP_NUM_THREADS": "2",
        "MKL_NUM_THREADS": "2",
        "OPENBLAS_NUM_THREADS": "2",
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
    assert "hello from the attempt" in (tmp_path / "logs/job-1/attempt-1.log").read_text()
    assert executor.active() == []


def test_gpus_are_handed_out_per_attempt(
    local: tuple[LocalExecutor, Exits], tmp_path: Path
) -> None:
    executor, exits = local
    executor.submit(_spec(tmp_path, 1, "describe", gpu=2))
    out = exits.wait(1).outputs
    assert out is not None and out["env"]["CUDA_VISIBLE_DEVICES"] == "0,1"
    with pytest.raises(RuntimeError, match="needs 3 GPUs"):
        executor.submit(_spec(tmp_path, 2, "describe", gpu=3))


def test_failures_report_their_reason(local: tuple[LocalExecutor, Exits], tmp_path: Path) -> None:
    executor, exits = local
    executor.submit(_spec(tmp_path, 1, "fail", {"x": 3}))
    executor.submit(_spec(tmp_path, 2, "broken"))
    failed, broken = exits.wait(1), exits.wait(2)
    assert (failed.returncode, failed.error) == (1, "ValueError: bad input 3")
    assert not failed.infra_failure
    assert broken.returncode == 2 and "cannot import 'job_targets:no_such_function'" in (
        broken.error or ""
    )
    with pytest.raises(RuntimeError, match="no local target"):
        executor.submit(_spec(tmp_path, 3, "unknown"))


def test_cancel_ends_the_whole_tree_and_removes_scratch(
    local: tuple[LocalExecutor, Exits], tmp_path: Path
) -> None:
    executor, exits = local
    pids_file = tmp_path / "pids"
    spec = _spec(tmp_path, 1, "spawn_and_sleep", {"pids_file": str(pids_file)})
    executor.submit(spec)
    deadline = time.monotonic() + 20
    while not pids_file.exists() or len(pids_file.read_text().split()) < 3:
        assert time.monotonic() < deadline
        time.sleep(0.02)
    child, grandchild, scratch = pids_file.read_text().split()
    assert scratch == str(spec.scratch_dir) and spec.scratch_dir.is_dir()
    assert _alive(int(child)) and _alive(int(grandchild))
    started = time.monotonic()
    executor.cancel(1)
    report = exits.wait(1, timeout=5)
    while _alive(int(child)) or _alive(int(grandchild)):
        assert time.monotonic() - started < 5, "processes outlived the cancel"
        time.sleep(0.02)
    assert report.cancelled and report.returncode == -signal.SIGTERM
    assert not spec.scratch_dir.exists()


def test_kill_9_reports_an_infrastructure_failure(
    local: tuple[LocalExecutor, Exits], tmp_path: Path
) -> None:
    executor, exits = local
    spec = _spec(tmp_path, 1, "sleep", {"seconds": 60})
    executor.submit(spec)
    pid = executor.pid_of(1)
    assert pid is not None
    os.kill(pid, signal.SIGKILL)
    report = exits.wait(1)
    assert report.returncode == -signal.SIGKILL and report.infra_failure
    assert not spec.scratch_dir.exists()


def test_close_stops_running_attempts(tmp_path: Path) -> None:
    executor = LocalExecutor(TARGETS, gpus=[], python_path=[HERE])
    exits = Exits()
    executor.on_exit = exits.add
    executor.submit(_spec(tmp_path, 1, "sleep", {"seconds": 60}))
    pid = executor.pid_of(1)
    assert pid is not None
    executor.close()
    report = exits.wait(1, timeout=10)
    assert report.cancelled and report.returncode != 0
    deadline = time.monotonic() + 5
    while _alive(pid):
        assert time.monotonic() < deadline
        time.sleep(0.02)


def test_light_entries_fork_from_a_zygote_without_the_heavy_libraries(tmp_path: Path) -> None:
    targets = {**TARGETS, "loaded": "job_targets:loaded", "light_loaded": "job_targets:loaded"}
    executor = LocalExecutor(
        targets,
        gpus=[],
        python_path=[HERE],
        preload=["numpy"],
        light=["light_loaded", "spawn_and_sleep", "not_an_entry"],
    )
    exits = Exits()
    executor.on_exit = exits.add
    try:
        executor.submit(_spec(tmp_path, 1, "loaded"))
        executor.submit(_spec(tmp_path, 2, "light_loaded"))
        full, light = exits.wait(1).outputs, exits.wait(2).outputs
        assert full is not None and light is not None
        assert full["numpy"] and not light["numpy"]
        assert full["parent"] != light["parent"]
        # A light attempt is still cancelled as a whole tree, its scratch removed.
        pids_file = tmp_path / "pids.txt"
        spec = _spec(tmp_path, 3, "spawn_and_sleep", {"pids_file": str(pids_file)})
        executor.submit(spec)
        deadline = time.monotonic() + 20
        while not pids_file.exists() or len(pids_file.read_text().split()) < 3:
            assert time.monotonic() < deadline, "the attempt never wrote its pids"
            time.sleep(0.02)
        child, grandchild, _ = pids_file.read_text().split()
        executor.cancel(3)
        report = exits.wait(3)
        while _alive(int(child)) or _alive(int(grandchild)):
            assert time.monotonic() < deadline, "processes outlived the cancel"
            time.sleep(0.02)
        assert report.cancelled and report.returncode == -signal.SIGTERM
        assert not spec.scratch_dir.exists()
    finally:
        executor.close()
