"""The Ray task's side of ``RayExecutor``: run one attempt on whatever node Ray chose.

``run_placed`` is the task: it first yields the node it landed on, then runs
the attempt (``run_on_node``) as the local executor does, under its own zygote,
shipping the log to the server while it runs. Imported by Ray on every node.
"""

from __future__ import annotations

import contextlib
import glob
import json
import logging
import os
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping
from dataclasses import replace
from pathlib import Path
from typing import IO, Any

from aimass.executors._child import RESULT_FILE
from aimass.executors.local import THREAD_VARS
from aimass.executors.ray_nodes import placed
from aimass.job_environment import JobEnvironment
from aimass.sandbox import Sandbox, bwrap_path

log = logging.getLogger("aimass.executors.ray")

SHIP_EVERY_S = 0.3
_CHECK_S = 0.05  # how often the task looks at its cancel flag while the attempt runs
_CHUNK = 1 << 20  # the most log bytes one POST carries
_TAIL = 1 << 20  # the most log bytes returned when there is no server to ship to


def _ray() -> Any:
    import ray

    return ray


def _whole_chars(data: bytes) -> bytes:
    """``data`` without a UTF-8 sequence cut short at its end."""
    for back in range(1, min(4, len(data)) + 1):
        byte = data[-back]
        if byte & 0xC0 == 0x80:  # a continuation byte: look further back
            continue
        size = 1 if byte < 0x80 else 2 if byte < 0xE0 else 3 if byte < 0xF0 else 4
        return data[:-back] if size > back else data
    return data


class _LogShipper:
    """Posts the log's new bytes to the server; unsent bytes wait for the next round."""

    def __init__(self, path: Path, env: Mapping[str, str], job_id: int, attempt: int) -> None:
        import httpx

        self.path, self.offset, self.failing = path, 0, False
        job = JobEnvironment.from_env(env)
        base = (job.url or "").rstrip("/") if job is not None else ""
        self.url = f"{base}/api/v1/jobs/{job_id}/attempts/{attempt}/logs" if base else None
        self.local = self.url is None  # no server: the tail goes back with the result
        # Not text/plain: the edge refuses that type on writes, as an HTML form can send it.
        headers = {"Content-Type": "application/octet-stream"}
        if job is not None and job.token:
            headers["Authorization"] = f"Bearer {job.token}"
        self.client = httpx.Client(headers=headers, timeout=10.0)

    def ship(self, final: bool = False) -> None:
        import httpx

        while self.url is not None:
            data = b""
            with contextlib.suppress(OSError), self.path.open("rb") as file:
                file.seek(self.offset)
                data = file.read(_CHUNK)
            data = data if final else _whole_chars(data)
            if not data:
                return
            try:
                response = self.client.post(self.url, content=data, timeout=2.0 if final else 10.0)
                reason = f"HTTP {response.status_code}"
            except httpx.HTTPError as exc:
                response, reason = None, repr(exc)
            if response is not None and response.status_code == 409:  # no longer current: stop
                self.url = None
            elif response is not None and response.is_success:
                self.offset += len(data)
                self.failing = False
            else:
                if not self.failing:
                    log.warning("cannot ship the log to %s (%s); will retry", self.url, reason)
                self.failing = True
                return

    def tail(self) -> str | None:
        with contextlib.suppress(OSError), self.path.open("rb") as file:
            file.seek(max(0, file.seek(0, os.SEEK_END) - _TAIL))
            return file.read().decode("utf-8", "replace") if self.local else None
        return None


#: Starts the zygote as a grandchild, out of reach of Ray's kill of a dying worker's children.
_LAUNCH = (
    "import os, subprocess, sys; p = subprocess.Popen(sys.argv[1:], start_new_session=True); "
    "n = os.open(os.devnull, os.O_RDWR); os.dup2(n, 0); os.dup2(n, 1); sys.exit(p.wait())"
)


class _Zygote:
    """The attempt's own zygote (``_zygote``): it forks the attempt, reaps it, ends its
    leftovers, and kills the whole tree when this worker dies (its stdin closes)."""

    def __init__(self, log_file: IO[bytes], sandbox: Sandbox | None, writable: list[Path]) -> None:
        zygote = [sys.executable, "-m", "aimass.executors._zygote", json.dumps(sys.path)]
        zygote.append(json.dumps(["aimass.executors._child"]))
        if sandbox is not None:
            zygote = _sandboxed(sandbox, writable, zygote)
        self.proc = subprocess.Popen(
            [sys.executable, "-c", _LAUNCH, *zygote],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=log_file,
            start_new_session=True,
        )
        self.buffer = b""
        self.pid: int | None = None
        self.returncode: int | None = None

    def send(self, command: dict[str, Any]) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write((json.dumps(command) + "\n").encode())
        self.proc.stdin.flush()

    def poll(self, timeout: float) -> None:
        """Read the zygote's events for up to ``timeout`` seconds."""
        assert self.proc.stdout is not None
        fd = self.proc.stdout.fileno()
        if select.select([fd], [], [], timeout)[0]:
            data = os.read(fd, 65536)
            if not data:
                raise RuntimeError("the attempt's zygote process died")
            self.buffer += data
        while b"\n" in self.buffer:
            line, self.buffer = self.buffer.split(b"\n", 1)
            event = json.loads(line)
            if event["ev"] == "started":
                self.pid = int(event["pid"])
            elif event["ev"] == "exited":
                self.returncode = int(event["returncode"])
            elif event["ev"] == "error":
                raise RuntimeError(f"could not start the attempt: {event.get('error')}")

    def end(self, grace_s: float) -> int:
        """SIGTERM the attempt's tree, SIGKILL what is left after ``grace_s``.

        A start sent but not yet seen started (a loaded machine, a slow zygote) is
        waited for first, within the grace, so that it too ends by SIGTERM; one that
        never started in that time is reported as ended by the cancel (-SIGTERM).
        """
        deadline = time.monotonic() + grace_s
        while self.pid is None and self.returncode is None and time.monotonic() < deadline:
            self.poll(0.05)
        if self.pid is None and self.returncode is None:
            self.close()
            return -signal.SIGTERM
        if self.pid is not None and self.returncode is None:
            self.send({"op": "kill", "pid": self.pid, "sig": int(signal.SIGTERM)})
            deadline = time.monotonic() + grace_s
            while self.returncode is None and time.monotonic() < deadline:
                self.poll(0.05)
        self.close()  # the zygote SIGKILLs every attempt it still runs
        return -signal.SIGKILL if self.returncode is None else self.returncode

    def close(self) -> None:
        with contextlib.suppress(OSError):
            if self.proc.stdin is not None:
                self.proc.stdin.close()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def _sandboxed(sandbox: Sandbox, writable: list[Path], command: list[str]) -> list[str]:
    """``command`` inside ``sandbox`` as this node sees it: its own home hidden too."""
    if bwrap_path() is None:
        raise RuntimeError(
            "jobs run in a bubblewrap sandbox and this Ray node has no bubblewrap: "
            "apt-get install -y bubblewrap on it, or start the server with --job-sandbox none"
        )
    hidden = [Path(p) for p in (*sandbox.hidden, Path.home())]
    return replace(
        sandbox,
        hidden=sorted({p for p in hidden if p.is_dir() and len(p.resolve().parts) > 1}),
        writable=writable,
        env={**sandbox.env, **dict.fromkeys(THREAD_VARS, "1")},
        devices=sorted(glob.glob("/dev/nvidia*")),
        die_with_parent=False,  # it ends when its stdin (from this worker) closes
    ).argv(command)


class _Interrupt:
    """Ray's cancel (a simulated SIGINT in the task's thread) as a flag the task checks.

    A ``KeyboardInterrupt`` lands between any two bytecodes: in the middle of
    reading the zygote's events it dropped the "started" line, and the attempt
    was then SIGKILLed at once instead of SIGTERMed (and a cancel during the
    clean-up went unanswered). The flag is read only where the task can act on
    it. Off the main thread (no handler can be set) the interrupt stays an exception.
    """

    def __init__(self) -> None:
        self.requested = False
        self._previous: Any = None
        self._installed = False

    def __enter__(self) -> _Interrupt:
        with contextlib.suppress(ValueError):  # not the main thread
            self._previous = signal.signal(signal.SIGINT, self._handle)
            self._installed = True
        return self

    def __exit__(self, *exc: object) -> None:
        if self._installed:
            signal.signal(signal.SIGINT, self._previous)

    def _handle(self, signum: int, frame: object) -> None:
        self.requested = True


def run_on_node(
    spec: dict[str, Any], private_name: str, grace_s: float, sandbox: Sandbox | None = None
) -> dict[str, Any]:
    """The Ray task: run one attempt here, ship its log, return its result."""
    gpus = ",".join(str(g) for g in _ray().get_gpu_ids())
    scratch = Path(spec["scratch_dir"])
    private = Path(tempfile.gettempdir()) / private_name  # holds the log, 0700
    private.mkdir(mode=0o700)
    log_path = private / "attempt.log"
    spec = {
        **spec,
        "env": {"CUDA_VISIBLE_DEVICES": gpus, **spec["env"]},  # the job's own env wins
        "log_path": str(log_path),
    }
    shipper = _LogShipper(log_path, spec["env"], spec["job_id"], spec["attempt"])
    zygote: _Zygote | None = None
    result: dict[str, Any] = {"returncode": -signal.SIGKILL, "outputs": None, "error": None}
    with _Interrupt() as interrupt:
        try:
            scratch.parent.mkdir(parents=True, exist_ok=True)
            scratch.mkdir(mode=0o700)
            scratch.chmod(0o700)
            with log_path.open("ab") as log_file:
                zygote = _Zygote(log_file, sandbox, [scratch.parent, private])
            zygote.send({"op": "start", "spec": spec})
            next_ship = time.monotonic() + SHIP_EVERY_S
            while zygote.returncode is None and not interrupt.requested:
                zygote.poll(min(_CHECK_S, max(0.0, next_ship - time.monotonic())))
                if time.monotonic() >= next_ship:
                    shipper.ship()
                    next_ship = time.monotonic() + SHIP_EVERY_S
            if zygote.returncode is None:  # ray.cancel: end the attempt's whole tree
                result["returncode"] = zygote.end(grace_s)
            else:
                result["returncode"] = zygote.returncode
        except KeyboardInterrupt:  # ray.cancel off the main thread
            result["returncode"] = zygote.end(grace_s) if zygote is not None else -signal.SIGTERM
        except Exception as exc:
            result["error"] = f"the attempt failed on this node: {exc}"
        finally:
            if zygote is not None:
                zygote.close()
            with contextlib.suppress(Exception):
                shipper.ship(final=True)
            shipper.client.close()
            with contextlib.suppress(OSError, ValueError):
                saved = json.loads((scratch / RESULT_FILE).read_text())
                result["outputs"] = saved.get("outputs")
                result["error"] = saved.get("error") or result["error"]
            result["log_tail"] = shipper.tail()
            shutil.rmtree(scratch, ignore_errors=True)
            shutil.rmtree(private, ignore_errors=True)
    return result


def run_placed(
    spec: dict[str, Any], private_name: str, grace_s: float, sandbox: Sandbox | None = None
) -> Iterator[dict[str, Any]]:
    """The Ray task as a generator: first the node it landed on, then ``run_on_node``'s result.

    The first item reaches the driver as soon as the task starts, so the job's
    record names the node while the attempt runs, not only once it has ended.
    """
    yield {"node_id": placed()}
    yield run_on_node(spec, private_name, grace_s, sandbox)
