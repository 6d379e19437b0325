"""Shared by the jobs benchmark's scripts: starting an aimass server, CPU times, statistics."""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
VENV_BIN = Path(sys.executable).parent
WORK = HERE / "work"
CLK_TCK = os.sysconf("SC_CLK_TCK")
TERMINAL = ("succeeded", "failed", "cancelled")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile (0..100), linear between the closest ranks (numpy's default)."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100.0
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def stats_ms(values_s: list[float]) -> dict[str, float]:
    """p50, p99, mean, min and max of durations in seconds, as milliseconds."""
    ms = [v * 1000.0 for v in values_s]
    return {
        "n": len(ms),
        "p50": percentile(ms, 50),
        "p99": percentile(ms, 99),
        "mean": sum(ms) / len(ms) if ms else float("nan"),
        "min": min(ms) if ms else float("nan"),
        "max": max(ms) if ms else float("nan"),
    }


def parse_ts(value: str) -> float:
    """A server timestamp (ISO 8601, UTC) as seconds since the epoch."""
    return dt.datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


def proc_cpu_s(pid: int, children: bool = False) -> float:
    """User + system CPU seconds of ``pid`` (all its threads); with ``children`` also those
    of its children it has reaped (cutime + cstime)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    # fields[0] is field 3 (state): utime is field 14, stime 15, cutime 16, cstime 17.
    ticks = int(fields[11]) + int(fields[12])
    if children:
        ticks += int(fields[13]) + int(fields[14])
    return ticks / CLK_TCK


def child_pids(pid: int) -> list[int]:
    """Direct children of ``pid`` (from /proc/<pid>/task/*/children)."""
    found: list[int] = []
    with contextlib.suppress(OSError):
        for task in os.listdir(f"/proc/{pid}/task"):
            with contextlib.suppress(OSError), open(f"/proc/{pid}/task/{task}/children") as f:
                found += [int(p) for p in f.read().split()]
    return found


def loadavg() -> str:
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


@dataclass
class AimassServer:
    """One ``aimass server`` process (its own session), its token and an HTTP client."""

    home: Path
    port: int
    slots: float = 2
    database_url: str | None = None
    command: list[str] | None = None  # default: the venv's ``aimass server``
    extra_env: dict[str, str] = field(default_factory=dict)
    proc: subprocess.Popen[bytes] | None = None
    token: str = ""

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 60.0) -> AimassServer:
        self.home.mkdir(parents=True, exist_ok=True)
        env = {
            **os.environ,
            "AIMASS_HOME": str(self.home),
            "AIMASS_PORT": str(self.port),
            "AIMASS_JOB_SLOTS": str(self.slots),
            "AIMASS_JOBS": "true",
        }
        env.pop("AIMASS_DATABASE_URL", None)
        if self.database_url:
            env["AIMASS_DATABASE_URL"] = self.database_url
        # Bytecode as an installed wheel has it: this machine sets PYTHONDONTWRITEBYTECODE=1,
        # under which every attempt would compile its entry's modules from source again.
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        env["PYTHONPYCACHEPREFIX"] = str(PYCACHE)
        compile_src(env)
        if SRC_PATH is not None:
            env["PYTHONPATH"] = os.pathsep.join(
                p for p in (str(SRC_PATH), env.get("PYTHONPATH", "")) if p
            )
        env.update(self.extra_env)
        command = self.command or [str(VENV_BIN / "aimass"), "server"]
        log = (self.home / "server.log").open("wb")
        self.proc = subprocess.Popen(
            [*command, "--port", str(self.port)],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        end = time.monotonic() + timeout
        token_file = self.home / "token"
        while time.monotonic() < end:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"aimass server exited: {(self.home / 'server.log').read_text()[-2000:]}"
                )
            if token_file.is_file():
                self.token = token_file.read_text().strip()
                with contextlib.suppress(httpx.HTTPError):
                    r = httpx.get(
                        f"{self.url}/api/v1/jobs/entries",
                        headers=self.headers,
                        timeout=2,
                    )
                    if r.status_code == 200:
                        return self
            time.sleep(0.05)
        self.stop()
        raise RuntimeError("aimass server did not come up in time")

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def zygote_pid(self) -> int | None:
        for pid in child_pids(self.pid):
            with contextlib.suppress(OSError), open(f"/proc/{pid}/cmdline", "rb") as f:
                if b"aimass.executors._zygote" in f.read():
                    return pid
        return None

    def client(self, **kwargs: Any) -> httpx.Client:
        return httpx.Client(base_url=self.url, headers=self.headers, timeout=30, **kwargs)

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()

    def __enter__(self) -> AimassServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


NOOP = {"kind": "train", "entry": "noop"}

#: Where servers keep their bytecode (outside src/); see ``AimassServer.start``.
PYCACHE = WORK / "pycache"
_compiled: set[str] = set()


def compile_src(env: dict[str, str]) -> None:
    """Byte-compile the aimass code the servers will run (once per process and tree)."""
    src = str(SRC_PATH or ROOT / "src")
    if src in _compiled:
        return
    subprocess.run(
        [str(VENV_BIN / "python"), "-m", "compileall", "-q", "-j", "0", src, str(HERE)],
        env=env,
        check=True,
        stdout=subprocess.DEVNULL,
    )
    _compiled.add(src)


#: When set (``use_commit``), servers import aimass from this copy of a commit's src/
#: (through PYTHONPATH, ahead of the editable install) instead of the working tree.
SRC_PATH: Path | None = None


def use_commit(rev: str) -> str:
    """Run servers on ``rev``'s src/ (a ``git archive`` under work/); returns its short sha."""
    global SRC_PATH
    sha = subprocess.run(
        ["git", "rev-parse", "--verify", f"{rev}^{{commit}}"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    dest = WORK / f"src-{sha[:12]}"
    if not (dest / "src" / "aimass" / "__init__.py").is_file():
        dest.mkdir(parents=True, exist_ok=True)
        archive = subprocess.run(
            ["git", "archive", sha, "src"], cwd=ROOT, capture_output=True, check=True
        ).stdout
        subprocess.run(["tar", "-x", "-C", str(dest)], input=archive, check=True)
    SRC_PATH = dest / "src"
    return sha[:7]


def cpu_busy(seconds: float = 1.0) -> float:
    """Share of the machine's CPU time that was busy over ``seconds`` (0..1, all cores)."""

    def sample() -> tuple[int, int]:
        with open("/proc/stat") as f:
            values = [int(v) for v in f.readline().split()[1:]]
        idle = values[3] + values[4]  # idle + iowait
        return sum(values[:8]), idle

    total0, idle0 = sample()
    time.sleep(seconds)
    total1, idle1 = sample()
    total = total1 - total0
    return 1.0 - (idle1 - idle0) / total if total else 0.0


def wait_for_quiet(max_wait_s: float, threshold: float = 0.15) -> dict[str, float]:
    """Wait (up to ``max_wait_s``) until other work uses under ``threshold`` of the CPUs;
    returns the last reading and how long it waited (recorded with the results)."""
    t0 = time.monotonic()
    busy = cpu_busy()
    while busy > threshold and time.monotonic() - t0 < max_wait_s:
        busy = cpu_busy(2.0)
    return {"busy_before": busy, "waited_s": time.monotonic() - t0}
