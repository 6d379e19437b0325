"""A pre-imported process that forks each attempt, so starting one costs a fork.

Started by ``LocalExecutor`` as ``python -m aimass.executors._zygote SYS_PATH PRELOAD``.
It speaks newline-delimited JSON: commands on stdin (``start``, ``kill``),
events on stdout (``ready`` once pre-imported, ``started``, ``exited``,
``error``). It stays single-threaded and is the parent of every attempt, so
it alone signals and reaps them: an attempt's process group is killed
(leftover grandchildren) while its leader is still an unreaped zombie, so the
group id cannot have been reused by then. When stdin closes (the server went
away) it kills every attempt and exits.
"""

from __future__ import annotations

import contextlib
import gc
import importlib
import json
import os
import select
import signal
import sys
from typing import Any


def _emit(event: dict[str, Any]) -> None:
    data = (json.dumps(event) + "\n").encode()
    while data:
        written = os.write(1, data)
        data = data[written:]


def _kill_group(pid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.kill(pid, sig)


class Zygote:
    """The fork loop; ``running`` maps each attempt's pid to its (job id, attempt)."""

    def __init__(self) -> None:
        self.running: dict[int, tuple[int, int]] = {}
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        os.set_blocking(self._wake_w, False)

    def start(self, spec: dict[str, Any]) -> None:
        job_id, attempt = int(spec["job_id"]), int(spec["attempt"])
        pid = os.fork()
        if pid == 0:  # the attempt
            code = 70
            events = -1
            try:
                signal.set_wakeup_fd(-1)
                signal.signal(signal.SIGCHLD, signal.SIG_DFL)
                signal.signal(signal.SIGINT, signal.SIG_DFL)
                signal.signal(signal.SIGTERM, signal.SIG_DFL)
                os.close(self._wake_r)
                os.close(self._wake_w)
                events = os.dup(1)  # the event pipe, before the attempt's output takes fd 1
                from aimass.executors._child import run_attempt

                code = run_attempt(spec)
            finally:
                # Report the end now: tearing down a forked address space and the reap
                # take several milliseconds more. The zygote's own later report is ignored.
                if events >= 0:
                    with contextlib.suppress(OSError):
                        line = {"ev": "exited", "job_id": job_id, "attempt": attempt}
                        line.update(pid=os.getpid(), returncode=code)
                        os.write(events, (json.dumps(line) + "\n").encode())
                os._exit(code)
        self.running[pid] = (job_id, attempt)
        _emit({"ev": "started", "job_id": job_id, "attempt": attempt, "pid": pid})

    def kill(self, pid: int, sig: int) -> None:
        if pid in self.running:  # never signal a pid that is no longer ours
            _kill_group(pid, sig)

    def reap(self) -> None:
        while True:
            try:
                info = os.waitid(os.P_ALL, 0, os.WEXITED | os.WNOHANG | os.WNOWAIT)
            except ChildProcessError:
                return
            if info is None or info.si_pid == 0:
                return
            pid = info.si_pid
            # The zombie still holds its pid and group id: end leftovers, then reap.
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pid, signal.SIGKILL)
            _, status = os.waitpid(pid, 0)
            job = self.running.pop(pid, None)
            if job is not None:
                _emit(
                    {
                        "ev": "exited",
                        "job_id": job[0],
                        "attempt": job[1],
                        "pid": pid,
                        "returncode": os.waitstatus_to_exitcode(status),
                    }
                )

    def serve(self) -> None:
        signal.set_wakeup_fd(self._wake_w)
        signal.signal(signal.SIGCHLD, lambda *_: None)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        buffer = b""
        while True:
            ready, _, _ = select.select([0, self._wake_r], [], [])
            if self._wake_r in ready:
                with contextlib.suppress(BlockingIOError):
                    while os.read(self._wake_r, 4096):
                        pass
                self.reap()
            if 0 not in ready:
                continue
            data = os.read(0, 65536)
            if not data:
                break
            buffer += data
            while b"\n" in buffer:
                line, buffer = buffer.split(b"\n", 1)
                self.handle(json.loads(line))
        for pid in list(self.running):
            _kill_group(pid, signal.SIGKILL)

    def handle(self, command: dict[str, Any]) -> None:
        try:
            if command["op"] == "start":
                self.start(command["spec"])
            elif command["op"] == "kill":
                self.kill(int(command["pid"]), int(command["sig"]))
        except Exception as exc:
            _emit(
                {
                    "ev": "error",
                    "command": command.get("op"),
                    "error": repr(exc),
                    "job_id": command.get("spec", {}).get("job_id"),
                    "attempt": command.get("spec", {}).get("attempt"),
                }
            )


def main() -> None:
    """Set up the import path, pre-import the preload list, and serve."""
    sys.path[:0] = [p for p in json.loads(sys.argv[1]) if p not in sys.path]
    for name in json.loads(sys.argv[2]):
        # Best effort: a module that cannot be imported here fails in its attempt, which
        # reports the error where the user sees it.
        with contextlib.suppress(Exception):
            importlib.import_module(name)
    from aimass.executors._child import warm

    warm()
    # Everything imported so far is shared with every attempt: keep the collector away
    # from it, or an attempt's first full collection copies all of those pages.
    gc.collect()
    gc.freeze()
    # Start commands sent meanwhile wait in stdin; the executor times their start from here.
    _emit({"ev": "ready"})
    Zygote().serve()


if __name__ == "__main__":
    main()
