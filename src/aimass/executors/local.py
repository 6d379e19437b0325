"""``LocalExecutor``: each attempt is an isolated process on this node.

Attempts are forked from a zygote, a small pre-imported process, so a start
costs a fork rather than an interpreter start-up; each attempt is still its own
process (its own memory) in its own session, with its own 0700 scratch folder,
thread limits from its CPU share and ``CUDA_VISIBLE_DEVICES`` naming only its
GPUs (empty when it has none). The scratch folder is deleted when the attempt
ends, however it ends.

There are up to two zygotes: the full one pre-imports the executor's whole
``preload`` list (numpy, pandas, sklearn...), and a light one only aimass's
runtime and httpx, for the entries named in ``light``. Forking from a process
that mapped fewer libraries and exiting it costs several times less CPU
(``benchmarks/jobs/fork_cost.py``), which is most of a trivial job's cost.

Given a ``Sandbox``, each zygote starts inside it (bubblewrap), so every attempt
forked from it runs there too: a clean environment, its own pid namespace, and
none of what the sandbox hides (the server's home, database, token, artifacts).
Pids the zygote reports are then the sandbox's own; ``pid_of`` translates them.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import shutil
import signal
import subprocess
import sys
import threading
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import IO, Any

from aimass.devices import child_visible_devices, detect_gpus
from aimass.executors._child import RESULT_FILE
from aimass.executors.base import AttemptExit, AttemptSpec, Executor
from aimass.job_environment import JobEnvironment
from aimass.sandbox import Sandbox, host_pid

log = logging.getLogger("aimass.executors.local")

#: Thread-pool sizes that numeric libraries read when they are first imported.
THREAD_VARS = (
    "OMP_NUM_THREADS",
    "MKL_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "NUMEXPR_NUM_THREADS",
    "VECLIB_MAXIMUM_THREADS",
)
#: What the light zygote pre-imports besides its entries' own modules.
LIGHT_PRELOAD = ("aimass.runtime", "aimass.client", "httpx")
#: The two zygotes' names.
FULL, LIGHT = "full", "light"


def child_spec(
    attempt: AttemptSpec,
    target: str,
    gpus: Sequence[str] | None,
    python_path: Sequence[str],
    log_path: Path | None,
) -> dict[str, Any]:
    """The spec a zygote starts one attempt from: thread limits, job env, paths.

    ``gpus`` None leaves ``CUDA_VISIBLE_DEVICES`` out (Ray's node sets it from its
    own GPU ids); ``log_path`` None leaves the choice to whoever runs the attempt.
    The attempt's own ``env`` is applied last, so it wins over everything here.
    """
    env = dict.fromkeys(THREAD_VARS, str(max(1, math.floor(attempt.resources.cpu))))
    if gpus is not None:
        env["CUDA_VISIBLE_DEVICES"] = child_visible_devices(gpus)
    job = JobEnvironment(
        job_id=attempt.job_id,
        attempt=attempt.attempt,
        project=attempt.project,
        scratch_dir=attempt.scratch_dir,
        checkpoint=attempt.checkpoint.model_dump_json() if attempt.checkpoint else "",
    )
    env.update(job.to_env())
    env.update(attempt.env)
    return {
        "job_id": attempt.job_id,
        "attempt": attempt.attempt,
        "target": target,
        "params": attempt.params,
        "env": env,
        "scratch_dir": str(attempt.scratch_dir),
        "python_path": list(python_path),
        "log_path": None if log_path is None else str(log_path),
    }


@dataclass
class _Attempt:
    spec: AttemptSpec
    gpus: list[str]
    started: threading.Event = field(default_factory=threading.Event)
    zygote: subprocess.Popen[bytes] | None = None
    pid: int | None = None
    error: str | None = None
    cancelled: bool = False


def _key(attempt: _Attempt) -> tuple[int, int]:
    return attempt.spec.job_id, attempt.spec.attempt


class LocalExecutor(Executor):
    """Runs attempts as child processes of a pre-imported zygote on this node.

    ``targets`` maps an entry name to the function that runs it, as
    ``"module:function"``; the function takes the params dict and returns a
    dict of outputs (or None). ``python_path`` is prepended to each attempt's
    import path. ``log_dir`` receives ``job-<id>/attempt-<n>.log`` with each
    attempt's stdout and stderr. ``cancel`` sends SIGTERM to the attempt's
    process group, then SIGKILL after ``kill_grace_s``. An attempt must start
    within ``start_timeout_s`` of the zygote having pre-imported (which may take
    up to ``preload_timeout_s`` on a loaded machine). ``sandbox`` None runs
    attempts with the server's own rights and environment (for tests and hosts
    without bubblewrap); its ``writable`` folders must hold the scratch folders.
    Entries named in ``light`` fork from a second zygote that pre-imported only
    ``light_preload`` and their own modules: a cheaper fork and exit for entries
    that do not need the heavy libraries (they import them, if ever, themselves).
    """

    def __init__(
        self,
        targets: Mapping[str, str],
        *,
        gpus: Sequence[str] | None = None,
        python_path: Sequence[str | Path] = (),
        log_dir: Path | None = None,
        preload: Sequence[str] = (),
        light: Collection[str] = (),
        light_preload: Sequence[str] = LIGHT_PRELOAD,
        kill_grace_s: float = 3.0,
        start_timeout_s: float = 10.0,
        preload_timeout_s: float = 300.0,
        sandbox: Sandbox | None = None,
    ) -> None:
        super().__init__()
        self.targets = dict(targets)
        self.gpus = list(detect_gpus() if gpus is None else gpus)
        self.python_path = [str(p) for p in python_path]
        self.log_dir = log_dir
        self.sandbox = sandbox
        self.light = frozenset(light) & set(self.targets)
        # The entries' own modules too: an attempt then imports nothing to start.
        entry_modules = sorted({t.partition(":")[0] for t in self.targets.values()})
        light_modules = sorted({self.targets[name].partition(":")[0] for name in self.light})
        self.preload = ["aimass.executors._child", *preload, *entry_modules]
        #: What each zygote pre-imports, by zygote name.
        self.preloads = {FULL: self.preload}
        if self.light:
            self.preloads[LIGHT] = ["aimass.executors._child", *light_preload, *light_modules]
        self.kill_grace_s = kill_grace_s
        self.start_timeout_s = start_timeout_s
        self.preload_timeout_s = preload_timeout_s
        self._free_gpus = list(self.gpus)
        self._attempts: dict[tuple[int, int], _Attempt] = {}
        self._lock = threading.Lock()
        self._write_lock = threading.Lock()
        self._zygotes: dict[str, subprocess.Popen[bytes]] = {}
        #: Set when a zygote has pre-imported (or died): attempts' start deadlines count from it.
        self._ready: dict[subprocess.Popen[bytes], threading.Event] = {}
        self._closed = False
        self._readers: list[threading.Thread] = []
        for name in self.preloads:
            self._ensure_zygote(name)

    # -- the zygote ---------------------------------------------------------

    def _zygote_for(self, entry: str) -> str:
        """Which zygote forks this entry's attempts."""
        return LIGHT if entry in self.light else FULL

    def _ensure_zygote(self, name: str) -> subprocess.Popen[bytes]:
        with self._lock:
            current = self._zygotes.get(name)
            if current is not None and current.poll() is None:
                return current
            command = [
                sys.executable,
                "-m",
                "aimass.executors._zygote",
                json.dumps(sys.path),
                json.dumps(self.preloads[name]),
            ]
            # No thread pools in the zygote: it forks, and threads do not survive a fork.
            env = {**os.environ, **dict.fromkeys(THREAD_VARS, "1")}
            if self.sandbox is not None:
                command = self._sandboxed(command)
                env = {}  # the sandbox sets the whole environment itself
            zygote = subprocess.Popen(
                command,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                env=env,
                start_new_session=True,  # a Ctrl-C on the terminal is the server's to handle
            )
            self._zygotes[name] = zygote
            self._ready[zygote] = threading.Event()
        reader = threading.Thread(
            target=self._read_events, args=(zygote,), name="local-executor", daemon=True
        )
        reader.start()
        self._readers.append(reader)
        return zygote

    def _sandboxed(self, command: list[str]) -> list[str]:
        sandbox = self.sandbox
        assert sandbox is not None
        writable = [Path(p) for p in sandbox.writable]
        if self.log_dir is not None:
            writable.append(self.log_dir)
        for folder in writable:  # bwrap binds only what exists
            folder.mkdir(parents=True, exist_ok=True)
        python_path = [p for p in self.python_path if Path(p).is_dir()]
        return replace(
            sandbox,
            read_only=[*sandbox.read_only, *python_path],
            writable=writable,
            env={**sandbox.env, **dict.fromkeys(THREAD_VARS, "1")},
            # Started from whichever thread submits first; it ends when its stdin closes.
            die_with_parent=False,
        ).argv(command)

    def _send(self, zygote: subprocess.Popen[bytes], command: dict[str, Any]) -> None:
        stdin = zygote.stdin
        assert stdin is not None
        with self._write_lock:
            stdin.write((json.dumps(command) + "\n").encode())
            stdin.flush()

    def _read_events(self, zygote: subprocess.Popen[bytes]) -> None:
        stdout: IO[bytes] | None = zygote.stdout
        assert stdout is not None
        ready = self._ready[zygote]
        for line in stdout:
            try:
                event = json.loads(line)
                if event.get("ev") == "ready":
                    ready.set()
                else:
                    self._on_event(event)
            except Exception:
                log.exception("local executor: bad event %r", line)
        # The zygote is gone: its attempts died with it (parent-death signal).
        zygote.wait()
        ready.set()
        stdout.close()
        if zygote.stdin is not None:
            with contextlib.suppress(OSError):
                zygote.stdin.close()
        with self._lock:
            orphans = [a for a in self._attempts.values() if a.zygote is zygote]
        for attempt in orphans:
            attempt.error = attempt.error or "the local executor's zygote process died"
            attempt.started.set()
            self._finish(attempt, -signal.SIGKILL)

    def _on_event(self, event: dict[str, Any]) -> None:
        with self._lock:
            attempt = self._attempts.get(
                (int(event.get("job_id") or 0), int(event.get("attempt") or 0))
            )
        if attempt is None:
            return
        kind = event["ev"]
        if kind == "started":
            attempt.pid = int(event["pid"])
            attempt.started.set()
            if attempt.cancelled:
                self._signal(attempt, signal.SIGTERM)
        elif kind == "exited":
            # The attempt may report its end before the zygote reports its start.
            attempt.pid = attempt.pid or int(event["pid"])
            attempt.started.set()
            self._finish(attempt, int(event["returncode"]))
        elif kind == "error":
            attempt.error = f"could not start the attempt: {event.get('error')}"
            attempt.started.set()

    # -- the seam -----------------------------------------------------------

    def submit(self, attempt: AttemptSpec) -> None:
        """Start the attempt; returns once its process exists (a few milliseconds)."""
        if self._closed:
            raise RuntimeError("the local executor is closed")
        target = self.targets.get(attempt.entry)
        if target is None:
            raise RuntimeError(f"no local target for entry {attempt.entry!r}")
        with self._lock:
            if (attempt.job_id, attempt.attempt) in self._attempts:
                raise RuntimeError(
                    f"job {attempt.job_id} attempt {attempt.attempt} already runs here"
                )
            if attempt.resources.gpu > len(self._free_gpus):
                raise RuntimeError(
                    f"job {attempt.job_id} needs {attempt.resources.gpu} GPUs; "
                    f"{len(self._free_gpus)} are free here"
                )
            gpus = [self._free_gpus.pop(0) for _ in range(attempt.resources.gpu)]
            state = _Attempt(spec=attempt, gpus=gpus)
            self._attempts[(attempt.job_id, attempt.attempt)] = state
        try:
            self._make_scratch(attempt.scratch_dir)
            zygote = self._ensure_zygote(self._zygote_for(attempt.entry))
            state.zygote = zygote
            log_path = None
            if self.log_dir is not None:
                log_path = self.log_dir / f"job-{attempt.job_id}" / f"attempt-{attempt.attempt}.log"
            spec = child_spec(attempt, target, gpus, self.python_path, log_path)
            self._send(zygote, {"op": "start", "spec": spec})
            # Pre-importing (a cold page cache, a loaded machine) is not the attempt's start:
            # wait for it apart, bounded only so that a zygote stuck in an import cannot hang us.
            if not self._ready[zygote].wait(self.preload_timeout_s):
                raise RuntimeError(
                    f"the local executor's zygote did not finish importing within "
                    f"{self.preload_timeout_s:.0f} s"
                )
            if not state.started.wait(self.start_timeout_s):
                raise RuntimeError("the attempt's process did not start in time")
            if state.error is not None:
                raise RuntimeError(state.error)
        except BaseException:
            with self._lock:
                self._attempts.pop((attempt.job_id, attempt.attempt), None)
                self._free_gpus.extend(gpus)
            shutil.rmtree(attempt.scratch_dir, ignore_errors=True)
            raise

    def cancel(self, job_id: int) -> None:
        """SIGTERM the job's attempts' process groups, SIGKILL after the grace period."""
        with self._lock:
            attempts = [a for (j, _), a in self._attempts.items() if j == job_id]
        for attempt in attempts:
            if attempt.cancelled:
                continue
            attempt.cancelled = True
            if attempt.pid is not None:
                self._signal(attempt, signal.SIGTERM)
            timer = threading.Timer(self.kill_grace_s, self._signal, (attempt, signal.SIGKILL))
            timer.daemon = True
            timer.start()

    def close(self) -> None:
        """Kill every attempt (reported through ``on_exit``) and stop the zygotes."""
        self._closed = True
        with self._lock:
            zygotes = list(self._zygotes.values())
            self._zygotes.clear()
            attempts = list(self._attempts.values())
        for attempt in attempts:
            attempt.cancelled = True
            self._signal(attempt, signal.SIGKILL)
        for zygote in zygotes:
            with contextlib.suppress(OSError):
                if zygote.stdin is not None:
                    zygote.stdin.close()
            try:
                zygote.wait(timeout=10)
            except subprocess.TimeoutExpired:
                zygote.kill()
                zygote.wait()
        for reader in self._readers:
            reader.join(timeout=10)

    def active(self) -> list[tuple[int, int]]:
        """The attempts running here now."""
        with self._lock:
            return [(a.spec.job_id, a.spec.attempt) for a in self._attempts.values()]

    def pid_of(self, job_id: int) -> int | None:
        """The process id (as this machine sees it) of the job's attempt here, if it runs here."""
        with self._lock:
            attempts = [a for (j, n), a in sorted(self._attempts.items()) if j == job_id]
        if not attempts or attempts[-1].pid is None:
            return None
        attempt = attempts[-1]
        if self.sandbox is None or attempt.zygote is None or attempt.pid is None:
            return attempt.pid
        return host_pid(attempt.pid, attempt.zygote.pid)

    # -- helpers ------------------------------------------------------------

    def _signal(self, attempt: _Attempt, sig: int) -> None:
        # Through the zygote: it alone knows whether the pid is still its unreaped child.
        zygote = attempt.zygote
        with self._lock:
            current = self._attempts.get(_key(attempt)) is attempt
        if not current or attempt.pid is None or zygote is None:
            return
        with contextlib.suppress(OSError, ValueError):
            self._send(zygote, {"op": "kill", "pid": attempt.pid, "sig": int(sig)})

    @staticmethod
    def _make_scratch(path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.mkdir(mode=0o700)
        path.chmod(0o700)  # the umask may have narrowed it; never let it be wider

    def _finish(self, attempt: _Attempt, returncode: int) -> None:
        with self._lock:
            if self._attempts.get(_key(attempt)) is not attempt:
                return
            del self._attempts[_key(attempt)]
            self._free_gpus.extend(attempt.gpus)
        outputs: dict[str, Any] | None = None
        error = attempt.error
        try:
            result = json.loads((attempt.spec.scratch_dir / RESULT_FILE).read_text())
        except (OSError, ValueError):
            result = {}
        if isinstance(result.get("outputs"), dict):
            outputs = result["outputs"]
        if isinstance(result.get("error"), str):
            error = result["error"]
        shutil.rmtree(attempt.spec.scratch_dir, ignore_errors=True)
        self._report(
            AttemptExit(
                job_id=attempt.spec.job_id,
                attempt=attempt.spec.attempt,
                returncode=returncode,
                cancelled=attempt.cancelled,
                outputs=outputs,
                error=error,
            )
        )
