"""Code-bearing model files load and run only in a sandboxed host process, never here.

A :class:`ModelHost` starts ``python -m aimass.flavors._host`` under bubblewrap
(:mod:`aimass.sandbox`): no network, no writable path but its own ``/tmp``,
the server's and the user's home hidden, the model file bound read-only at its
path and nothing else of the server's files. It talks over the host's stdin
and stdout in :mod:`._wire` format (JSON and raw numbers, never pickle, since
the host may be compromised) with every reply capped in size and time.
:class:`SandboxedPredictor` is the :class:`~aimass.flavors.base.Predictor`
over it, so the serving runner does not know the model lives elsewhere;
``close()`` stops the process. Without bubblewrap these formats are
Unavailable: there is no in-process fallback.
"""

from __future__ import annotations

import collections
import contextlib
import hashlib
import os
import select
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import threading
import time
import weakref
from collections.abc import Iterator, Mapping
from contextvars import ContextVar
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import numpy as np

import aimass.flavors._wire as _wire
import aimass.sandbox as sandbox
from aimass.devices import current_gpus, gpu_devices, gpu_env, gpus_argv
from aimass.errors import InvalidInput, Unavailable, Unprocessable
from aimass.flavors.base import process_threads
from aimass.flavors.cpus import cpus_argv, runner_cores, spare_cores
from aimass.flavors.signature import Signature

if TYPE_CHECKING:
    from aimass.flavors.base import Array, Batch

#: Seconds a host may take to import its libraries and load the model.
START_TIMEOUT_S = 120.0
#: Seconds one predict call may take before the host is stopped (and restarted next time).
CALL_TIMEOUT_S = 300.0
#: The ready message (signature, classes) is small; a bigger one is refused.
READY_LIMIT = 16 * 2**20
#: A reply may hold this much, plus REPLY_PER_ROW for each row asked about, up to REPLY_MAX.
REPLY_BASE = 64 * 2**20
REPLY_PER_ROW = 2**20
REPLY_MAX = 4 * 2**30
_STDERR_TAIL = 4096
#: What bubblewrap says when it runs inside a sandbox that forbids mounting a new /proc.
_NESTED_HINT = b"Can't mount proc"
_SYSTEM_ROOTS = frozenset(("/", "/tmp", *sandbox.SYSTEM_DIRS, "/etc", "/dev", "/proc"))


def hidden_paths(model: Path) -> list[Path]:
    """Folders to hide: the OS user's home and every folder above the model (the server's home
    holds it), in case a Python folder the sandbox binds lies above one of them."""
    hidden = [Path.home()]
    for parent in model.resolve().parents:
        if str(parent) not in _SYSTEM_ROOTS and not str(parent).startswith("/usr/"):
            hidden.append(parent)
    return sorted(set(hidden), key=lambda p: len(p.parts))


class ModelHost:
    """One sandboxed host process for one model file; restarted on demand after it dies.

    ``threads``: the replica's CPU share, which sizes the model's thread pools in the
    host; None leaves the libraries' defaults.
    """

    def __init__(self, flavor: str, path: Path, trusted: bool, threads: int | None = None) -> None:
        self.flavor = flavor
        self.path = path.resolve()
        self.trusted = trusted
        self.threads = threads
        #: The node's GPUs given to the model (``devices.assigned_gpus`` when it was made).
        self.gpus = current_gpus()
        self.facts: dict[str, Any] = {}
        self._process: subprocess.Popen[bytes] | None = None
        self._stderr: collections.deque[bytes] = collections.deque(maxlen=64)
        self._nested = False
        self._lock = threading.Lock()

    @property
    def pid(self) -> int | None:
        """The bubblewrap process's id while the host runs, else None."""
        process = self._process
        return process.pid if process is not None and process.poll() is None else None

    def start(self) -> dict[str, Any]:
        """Start the host and return its ready facts; Unprocessable when the model is refused."""
        with self._lock:
            return self._start()

    def call(self, header: dict[str, Any], arrays: Mapping[str, Array], rows: int) -> Any:
        """Send one request and return (header, arrays) of the reply."""
        with self._lock:
            if self._process is None or self._process.poll() is not None:
                self._start()  # died since (or never started): start again, once
            process = self._process
            assert process is not None and process.stdin is not None
            try:
                process.stdin.write(_wire.encode(header, arrays))
                process.stdin.flush()
            except OSError:
                self._stop()
                raise Unavailable(self._died("while taking a request")) from None
            limit = min(REPLY_MAX, REPLY_BASE + rows * REPLY_PER_ROW)
            return self._read(limit, CALL_TIMEOUT_S, "answering a request")

    def close(self) -> None:
        """Stop the host process (it is started again by the next call, if any)."""
        with self._lock:
            self._stop()

    def _start(self) -> dict[str, Any]:
        self._stop()
        self._spawn()
        try:
            header, _ = self._read(READY_LIMIT, START_TIMEOUT_S, "loading the model")
        except Unavailable:
            if not self._nested and any(_NESTED_HINT in line for line in self._stderr):
                # Already inside a sandbox (a job): run the inner one without a new /proc.
                self._nested = True
                return self._start()
            raise
        ready = header.get("ready")
        if not isinstance(ready, dict):
            self._stop()
            raise Unavailable("the sandboxed model process sent no ready message")
        self.facts = ready
        return ready

    def _spawn(self) -> None:
        box = sandbox.Sandbox(
            read_only=[self.path],
            hidden=hidden_paths(self.path),
            # A trusted pickle may name classes of any module the server can import.
            env=sandbox.safe_env(
                {"PYTHONPATH": os.pathsep.join(_import_path()), **gpu_env(self.gpus)}
            ),
            devices=gpu_devices(self.gpus),
            network=False,
            fresh_proc=not self._nested,
            # The host ends when its stdin closes; dying with the spawning thread (a pool
            # thread of the reconciler or of an upload) would end it too early.
            die_with_parent=False,
        )
        command = [
            sys.executable, "-s", "-m", "aimass.flavors._host", *_threads_argv(self.threads),
            *gpus_argv(self.gpus), self.flavor, str(self.path), "1" if self.trusted else "0",
        ]  # fmt: skip
        self._stderr.clear()
        self._process = subprocess.Popen(
            box.argv(command),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            close_fds=True,
        )
        drain = threading.Thread(
            target=_drain, args=(self._process, self._stderr), daemon=True, name="aimass-host-err"
        )
        drain.start()

    def _read(
        self, limit: int, timeout: float, doing: str
    ) -> tuple[dict[str, Any], dict[str, Array]]:
        process = self._process
        assert process is not None and process.stdout is not None
        reader = _DeadlineReader(process.stdout.fileno(), time.monotonic() + timeout)
        try:
            header, arrays = _wire.decode(reader.read, limit)
        except TimeoutError:
            self._stop()
            raise Unavailable(
                f"the sandboxed model process did not finish {doing} within {timeout:.0f} s; "
                "it was stopped and starts again on the next request"
            ) from None
        except (EOFError, _wire.WireError) as exc:
            self._stop()
            what = "sent a malformed reply" if isinstance(exc, _wire.WireError) else "stopped"
            raise Unavailable(self._died(doing, what)) from None
        if header.get("ok") is True:
            return header, arrays
        if header.get("status") == 422 or doing == "loading the model":
            self._stop()
        _raise_for(header, doing)

    def _died(self, doing: str, what: str = "stopped") -> str:
        code = self._process.returncode if self._process is not None else None
        tail = b"".join(self._stderr).decode(errors="replace").strip().splitlines()[-1:]
        detail = f" ({tail[0][:200]})" if tail and code not in (None, 0) else ""
        return f"the sandboxed model process {what} while {doing}{detail}; try again"

    def _stop(self) -> None:
        process, self._process = self._process, None
        if process is None:
            return
        if process.stdin is not None:
            with contextlib.suppress(OSError):
                process.stdin.close()
        try:
            process.wait(timeout=2.0)
        except subprocess.TimeoutExpired:
            # Busy (or hostile): kill bwrap and everything under it, since the model process
            # does not die with bwrap (die_with_parent is off).
            for pid in [*_descendants(process.pid), process.pid]:
                with contextlib.suppress(OSError):
                    os.kill(pid, signal.SIGKILL)
            process.wait()
        if process.stdout is not None:
            process.stdout.close()


def _raise_for(header: Mapping[str, Any], doing: str) -> NoReturn:
    """The error a host's failed reply stands for."""
    message = str(header.get("error", "the model failed"))[:500]
    status = header.get("status")
    if status == 400:
        raise InvalidInput(message)
    if status == 422 or doing == "loading the model":
        raise Unprocessable(message)
    raise InvalidInput(f"the model failed on this input: {message}")


#: The runner process a ``start_host`` in this context joins (or starts): its folder, key,
#: thread count and whether it takes cores of its own.
_SHARED: ContextVar[tuple[Path, str, int | None, bool] | None] = ContextVar(
    "aimass_shared_runner", default=None
)


@contextlib.contextmanager
def shared_runner(
    folder: Path, key: str, threads: int | None = None, *, own_cores: bool = False
) -> Iterator[None]:
    """Within this block, ``start_host`` joins the node's runner process for ``key``.

    One runner process per key and node, whichever worker starts it (see
    :class:`SharedHost`); ``folder`` holds its socket and lock file. ``threads``: the
    replica's CPU share, which sizes the model's thread pools in the runner. ``own_cores``:
    a runner started here runs on that many cores the server may not use, if any.
    """
    token = _SHARED.set((folder, key, threads, own_cores))
    try:
        yield
    finally:
        _SHARED.reset(token)


_SETSID = shutil.which("setsid") or "/usr/bin/setsid"


def runner_folder() -> Path:
    """A short private folder for runner sockets (a Unix socket path holds at most 107 bytes)."""
    folder = Path(tempfile.gettempdir()) / f"aimass-runners-{os.getuid()}"
    folder.mkdir(mode=0o700, exist_ok=True)
    info = folder.lstat()
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid():
        raise Unavailable(f"{folder} is not a folder of this user; remove it")
    os.chmod(folder, 0o700)
    return folder


class SharedHost:
    """A worker's connection to the node's one runner process for a key (a ModelHost's API).

    ``start`` connects to the runner's Unix socket; when none answers it starts one
    under bubblewrap (``_host --listen``), which takes the key's lock file: of the
    workers that race, one runner wins and the others connect to it. With
    ``own_cores``, when the server is confined to some of the node's cores, the runner
    runs on ``threads`` of the others (:mod:`aimass.flavors.cpus`), so the model does
    not compete with the workers' HTTP for a core. The runner outlives the worker that
    started it and ends once no worker has been connected for a while. ``call`` sends
    one request and waits for its reply (one at a time per worker; the runner runs one
    model call at a time for all of them).
    """

    def __init__(
        self,
        flavor: str,
        path: Path,
        trusted: bool,
        folder: Path,
        key: str,
        threads: int | None = None,
        own_cores: bool = False,
    ) -> None:
        self.flavor = flavor
        self.path = path.resolve()
        self.trusted = trusted
        self.threads = threads
        self.own_cores = own_cores
        #: The node's GPUs given to the model (``devices.assigned_gpus`` when it was made).
        self.gpus = current_gpus()
        # A folder per runner, and only that one writable in its sandbox: a hostile model
        # must not reach (or replace) the sockets of the node's other runners. A new CPU
        # share (or other GPUs) is a new runner: the old one ends once left.
        gpus = ",".join(self.gpus)
        digest = hashlib.sha256(f"{key}|threads={threads}|gpus={gpus}".encode()).hexdigest()
        self.folder = folder / digest[:24]
        self.socket_path = self.folder / "sock"
        self.lock_path = self.folder / "lock"
        self.facts: dict[str, Any] = {}
        self._conn: socket.socket | None = None
        self._lock = threading.Lock()

    @property
    def pid(self) -> int | None:
        """Not this worker's child: the runner is the node's (see ``runner_pid``)."""
        return None

    def start(self) -> dict[str, Any]:
        """Connect to (or start) the runner and return its ready facts."""
        with self._lock:
            return self._connect()

    def call(self, header: dict[str, Any], arrays: Mapping[str, Array], rows: int) -> Any:
        """Send one request and return (header, arrays) of the reply; reconnects once."""
        with self._lock:
            for attempt in (1, 2):
                if self._conn is None:
                    self._connect()
                conn = self._conn
                assert conn is not None
                try:
                    conn.sendall(_wire.encode(header, arrays))
                    limit = min(REPLY_MAX, REPLY_BASE + rows * REPLY_PER_ROW)
                    return self._read(limit, CALL_TIMEOUT_S, "answering a request")
                except (OSError, EOFError, _wire.WireError, TimeoutError):
                    self._disconnect()
                    if attempt == 2:
                        raise Unavailable(
                            "the runner process went away while answering; try again"
                        ) from None
            raise AssertionError("unreachable")

    def close(self) -> None:
        """Leave the runner (it ends once no worker is connected)."""
        with self._lock:
            self._disconnect()

    def _read(self, limit: int, timeout: float, doing: str) -> tuple[dict[str, Any], Any]:
        conn = self._conn
        assert conn is not None
        reader = _DeadlineReader(conn.fileno(), time.monotonic() + timeout)
        header, arrays = _wire.decode(reader.read, limit)
        if header.get("ok") is True:
            return header, arrays
        _raise_for(header, doing)

    def _connect(self) -> dict[str, Any]:
        deadline = time.monotonic() + START_TIMEOUT_S
        spawned = False
        while True:
            conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                conn.connect(str(self.socket_path))
            except OSError:
                conn.close()
                if not spawned:
                    spawned = True
                    self._spawn()  # says whether it won the lock; either way, connect
                elif time.monotonic() > deadline:
                    raise Unavailable(
                        f"no runner process answered within {START_TIMEOUT_S:.0f} s"
                    ) from None
                else:
                    time.sleep(0.05)
                continue
            self._conn = conn
            try:
                header, _ = self._read(READY_LIMIT, START_TIMEOUT_S, "loading the model")
            except (EOFError, _wire.WireError, TimeoutError):
                self._disconnect()
                raise Unavailable("the runner process sent no ready message") from None
            ready = header.get("ready")
            if not isinstance(ready, dict):
                self._disconnect()
                raise Unavailable("the runner process sent no ready message")
            self.facts = ready
            return ready

    def _spawn(self) -> None:
        self.folder.mkdir(mode=0o700, exist_ok=True)
        box = sandbox.Sandbox(
            read_only=[self.path],
            writable=[self.folder],
            hidden=hidden_paths(self.path),
            env=sandbox.safe_env(
                {"PYTHONPATH": os.pathsep.join(_import_path()), **gpu_env(self.gpus)}
            ),
            devices=gpu_devices(self.gpus),
            network=False,
            die_with_parent=False,  # the node's runner outlives the worker that started it
        )
        command = [
            sys.executable, "-s", "-m", "aimass.flavors._host", *_threads_argv(self.threads),
            *cpus_argv(self._cores()), *gpus_argv(self.gpus),
            self.flavor, str(self.path), "1" if self.trusted else "0",
            "--listen", str(self.socket_path), str(self.lock_path),
        ]  # fmt: skip
        # ``setsid -f``: the runner is nobody's child here (the worker that starts it may end
        # first) and in a session of its own, so a worker's Ctrl-C or stop does not reach it.
        process = subprocess.Popen(
            [_SETSID, "-f", *box.argv(command)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            close_fds=True,
        )
        process.wait()  # setsid itself returns at once; the runner keeps the pipe
        assert process.stdout is not None
        reader = _DeadlineReader(process.stdout.fileno(), time.monotonic() + START_TIMEOUT_S)
        try:
            header, _ = _wire.decode(reader.read, READY_LIMIT)
        except (EOFError, _wire.WireError, TimeoutError):
            process.stdout.close()
            raise Unavailable("the runner process stopped while loading the model") from None
        process.stdout.close()
        if header.get("ok") is not True:
            _raise_for(header, "loading the model")

    def _cores(self) -> list[int] | None:
        """The cores to pin a new runner to (``own_cores``), or None: the server's."""
        if not self.own_cores:
            return None
        return runner_cores(self.threads or 1, str(self.folder), spare_cores())

    def _disconnect(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()


def _threads_argv(threads: int | None) -> list[str]:
    """The host's ``--threads`` option, when a thread count is set."""
    return [] if threads is None else ["--threads", str(threads)]


def _descendants(pid: int) -> list[int]:
    """Every process below ``pid``, from /proc (children before their parents' siblings)."""
    found: list[int] = []
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return found
    for task in tasks:
        try:
            children = Path(f"/proc/{pid}/task/{task}/children").read_text().split()
        except OSError:
            continue
        for child in map(int, children):
            found += [child, *_descendants(child)]
    return found


def _import_path() -> list[str]:
    return [p for p in sys.path if p and os.path.isdir(p)]


def _drain(process: subprocess.Popen[bytes], tail: collections.deque[bytes]) -> None:
    """Keep the last lines the host wrote to stderr (a full pipe would block it)."""
    assert process.stderr is not None
    for line in iter(process.stderr.readline, b""):
        tail.append(line[:_STDERR_TAIL])
    process.stderr.close()


class _DeadlineReader:
    """Reads exactly n bytes from a pipe, or raises TimeoutError at the deadline."""

    def __init__(self, fd: int, deadline: float) -> None:
        self.fd = fd
        self.deadline = deadline

    def read(self, size: int) -> bytes:
        chunks: list[bytes] = []
        left = size
        while left > 0:
            wait = self.deadline - time.monotonic()
            if wait <= 0:
                raise TimeoutError
            ready, _, _ = select.select([self.fd], [], [], wait)
            if not ready:
                raise TimeoutError
            chunk = os.read(self.fd, min(left, 2**20))
            if not chunk:
                break
            chunks.append(chunk)
            left -= len(chunk)
        return b"".join(chunks)


class EstimatorFacts:
    """What evaluation reads of a sandboxed estimator: its classes and fitted column names."""

    def __init__(self, facts: Mapping[str, Any]) -> None:
        classes = facts.get("classes")
        self.classes_ = None if classes is None else np.asarray(classes)
        names = facts.get("feature_names")
        self.feature_names_in_ = None if names is None else np.asarray(names, dtype=object)


class SandboxedPredictor:
    """A predictor whose model lives in a :class:`ModelHost`; ``close()`` stops the host."""

    def __init__(self, host: ModelHost | SharedHost) -> None:
        self.host = host
        # A predictor dropped without close() (a job, a test) still stops its host.
        weakref.finalize(self, host.close)
        facts = host.facts
        raw = facts.get("signature")
        self.signature = None if raw is None else Signature.model_validate(raw)
        self.estimator = EstimatorFacts(facts)
        #: Where the host runs the model: ``cpu`` or ``cuda:N`` (as the host numbers its GPUs).
        self.device: str = str(facts.get("device", "cpu"))

    def predict(self, batch: Batch) -> Array:
        """Run the model's predict in the host."""
        _, arrays = self._call({"op": "predict"}, batch)
        return _result(arrays)

    def predict_proba(self, batch: Batch) -> Array | None:
        """Run the model's predict_proba in the host (None when it has none)."""
        header, arrays = self._call({"op": "predict_proba"}, batch)
        return None if header.get("none") else _result(arrays)

    def close(self) -> None:
        """Stop the host process."""
        self.host.close()

    def _call(self, header: dict[str, Any], batch: Batch) -> Any:
        if isinstance(batch, Mapping):
            arrays = {str(k): np.asarray(v) for k, v in batch.items()}
        else:
            arrays = {"": np.asarray(batch)}
            header = {**header, "bare": True}
        rows = max((len(a) for a in arrays.values() if a.ndim), default=1)
        return self.host.call(header, arrays, rows)


class NamedSandboxedPredictor(SandboxedPredictor):
    """A sandboxed predictor whose model names its outputs (TorchScript)."""

    def predict_named(self, batch: Batch, names: list[str]) -> dict[str, Array]:
        """Run the model once in the host and return the outputs in ``names``."""
        _, arrays = self._call({"op": "predict_named", "names": names}, batch)
        return dict(arrays)


def _result(arrays: Mapping[str, Array]) -> Array:
    if "result" not in arrays:
        raise Unavailable("the sandboxed model process sent a reply without a result")
    return arrays["result"]


def start_host(flavor: str, path: Path, trusted: bool) -> SandboxedPredictor:
    """Start a host for the file and return its predictor (Unprocessable: the model is refused).

    Within ``shared_runner``, the host is the node's runner process for that key. Its
    thread count is the runner's, or this process's own when it serves one replica (a
    Ray replica actor whose model runs in a host): see ``dedicate_threads``.
    """
    shared = _SHARED.get()
    host: ModelHost | SharedHost
    if shared is not None:
        folder, key, threads, own_cores = shared
        host = SharedHost(flavor, path, trusted, folder, key, threads, own_cores)
    else:
        host = ModelHost(flavor, path, trusted, process_threads())
    facts = host.start()
    cls = NamedSandboxedPredictor if facts.get("named") else SandboxedPredictor
    return cls(host)


def inspect_in_host(flavor: str, path: Path, trusted: bool) -> Signature | None:
    """Load the file in a host, read its signature, and stop the host."""
    host = ModelHost(flavor, path, trusted)
    try:
        raw = host.start().get("signature")
    finally:
        host.close()
    try:
        return None if raw is None else Signature.model_validate(raw)
    except ValueError as exc:
        raise Unprocessable("the model's signature is not valid") from exc
