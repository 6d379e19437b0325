"""``RayExecutor``: each attempt is one Ray task, placed by Ray across the cluster.

The task asks Ray for the attempt's ``num_cpus``, ``num_gpus`` and ``memory`` and,
on whatever node it lands, runs the attempt as the local executor does (forked by
a zygote, ``_child.run_attempt``): in its own session, in a fresh 0700 scratch
folder, with thread limits from its CPU share and ``CUDA_VISIBLE_DEVICES`` naming
the GPUs Ray gave it. Meanwhile it posts the log's new bytes to the server
(the attempt's server URL) every 0.3 s; with no server, the log's tail comes back with the
result and goes under the driver's ``log_dir``. Ray never retries a task: a dead
worker reports ``-9``, an infrastructure failure the scheduler retries itself.

The task's side lives in ``ray_task`` (it first yields the node it landed on,
named for the job's record by ``ray_nodes``); this module is the driver's side.
One driver thread waits on the tasks and reports each end exactly once.
``cancel`` interrupts the task (a ``KeyboardInterrupt`` in it), which SIGTERMs
the attempt's process group, SIGKILLs it after the grace period and cleans up; a
task still there later has its worker killed. The attempt runs under its own
zygote (``_zygote``), a grandchild of the worker out of reach of Ray's kill of a
dying worker's children: when the worker dies, however it dies, the zygote's
stdin closes and it kills the attempt's whole tree. The driver then removes the
scratch folder where that path is on its own machine; on another node a dead
worker's scratch folder stays. Nodes need ``aimass`` installed for the workers.

Given a ``Sandbox``, the zygote starts inside it on the node (bubblewrap must be
installed there, or the attempt fails saying so): the worker's home (Ray's token),
``/tmp`` (Ray's session folder) and the server's folders are hidden, the
environment is clean, and only the scratch and log folders are writable.

A Ray that the executor starts itself (no address) keeps its session folder
under ``temp_dir`` (the server's home) and is told to use 127.0.0.1 as its
node address; Ray 2.60 still binds its gRPC servers to every interface (see
docs/security.md).
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
import shutil
import signal
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aimass.executors.base import AttemptExit, AttemptSpec, Executor, NodeCapacity
from aimass.executors.local import child_spec
from aimass.executors.ray_nodes import RayNodes
from aimass.executors.ray_task import run_placed
from aimass.sandbox import Sandbox

log = logging.getLogger("aimass.executors.ray")


def _ray() -> Any:
    try:
        import ray
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise RuntimeError("the Ray executor needs Ray: install aimass[ray]") from exc
    return ray


def ray_capacity() -> NodeCapacity:
    """The whole Ray cluster's CPUs, GPUs and memory (MB), for placement."""
    ray = _ray()
    if not ray.is_initialized():
        raise RuntimeError("Ray is not initialized; create a RayExecutor first")
    total = ray.cluster_resources()
    memory = total.get("memory")
    return NodeCapacity(
        cpu=float(total.get("CPU", 0.0)),
        gpu=int(total.get("GPU", 0)),
        memory_mb=int(memory) // (1 << 20) if memory else None,
    )


def joined_address() -> str | None:
    """The GCS address of a Ray this process already joined (an embedding program's), or None."""
    ray = sys.modules.get("ray")
    if ray is None or not ray.is_initialized():
        return None
    return str(ray.get_runtime_context().gcs_address)


# -- on the driver ------------------------------------------------------------

#: Unix sockets live in Ray's session folder; their paths must stay under 108 bytes.
_MAX_TEMP_DIR = 40


def local_ray_options(temp_dir: Path | None) -> dict[str, Any]:
    """``ray.init`` options for a Ray this server starts: loopback address, no dashboard.

    The session folder (sockets, logs) goes under ``temp_dir`` when that path is
    short enough for Ray's unix sockets, else in a fresh 0700 folder under /tmp.
    """
    options: dict[str, Any] = {"_node_ip_address": "127.0.0.1", "include_dashboard": False}
    if temp_dir is not None:
        folder = temp_dir
        if len(str(temp_dir)) > _MAX_TEMP_DIR:
            folder = Path(tempfile.mkdtemp(prefix="aimass-ray-"))
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        options["_temp_dir"] = str(folder)
    return options


#: Ray's switch for "this node may join a cluster"; off, every Ray server binds to loopback.
_RAY_CLUSTER_SWITCH = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"


def keep_local_ray_on_loopback(home: Path | None) -> None:
    """Make the Ray this process starts listen on loopback only and keep its token in ``home``.

    Ray 2.60 turns a node address of 127.0.0.1 into the machine's own address
    unless its cluster switch is off; with it off, the address stays 127.0.0.1 and
    Ray's servers (GCS, raylet, workers, agents) bind to loopback. Ray's token
    would go to ``~/.ray/auth_token``; it is made here instead, owner-only, under
    the server's home. Ray's child processes read both from the environment; this
    process's Ray already read them at import, so its constant and cache are reset.
    """
    os.environ[_RAY_CLUSTER_SWITCH] = "0"
    constants = sys.modules.get("ray._private.ray_constants")
    if constants is not None:
        setattr(constants, "ENABLE_RAY_CLUSTER", False)  # noqa: B010 (Ray ships no stubs)
    if home is None:
        return
    home.mkdir(mode=0o700, parents=True, exist_ok=True)
    token = home / "auth_token"
    if not token.exists():
        fd = os.open(token, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(secrets.token_hex(32))
    # Ray turns token auth on by itself for a new local cluster; it only needs to find this one.
    os.environ["RAY_AUTH_TOKEN_PATH"] = str(token)
    os.environ.pop("RAY_AUTH_TOKEN", None)
    if "ray._raylet" in sys.modules:
        sys.modules["ray._raylet"].AuthenticationTokenLoader.instance().reset_cache()


@dataclass
class _Attempt:
    spec: AttemptSpec
    ref: Any
    private: str
    node: str | None = None  # the Ray node it runs on, once its task has said so
    cancelled: bool = False
    forced: bool = False
    timer: threading.Timer | None = None


def _key(attempt: _Attempt) -> tuple[int, int]:
    return (attempt.spec.job_id, attempt.spec.attempt)


class RayExecutor(Executor):
    """Runs each attempt as a Ray task that asks for the attempt's resources.

    ``targets``, ``python_path``, ``log_dir`` and ``kill_grace_s`` mean what they
    mean for ``LocalExecutor``. If Ray is not initialized it is started here
    (``address=None``: a local instance, with ``init_kwargs`` such as
    ``num_cpus``) and shut down by ``close``; a Ray the caller started is left up.
    """

    def __init__(
        self,
        targets: Mapping[str, str],
        *,
        address: str | None = None,
        python_path: Sequence[str | Path] = (),
        log_dir: Path | None = None,
        kill_grace_s: float = 3.0,
        init_kwargs: dict[str, Any] | None = None,
        sandbox: Sandbox | None = None,
        temp_dir: Path | None = None,
    ) -> None:
        super().__init__()
        ray = _ray()
        self.targets = dict(targets)
        self.python_path = [str(p) for p in python_path]
        self.log_dir = log_dir
        self.kill_grace_s = kill_grace_s
        self.sandbox = sandbox
        self._owns_ray = not ray.is_initialized()
        if self._owns_ray:
            kwargs = {"include_dashboard": False, "log_to_driver": False, **(init_kwargs or {})}
            if address is None:
                kwargs = {**local_ray_options(temp_dir), **kwargs}
                keep_local_ray_on_loopback(temp_dir)
            ray.init(address=address, ignore_reinit_error=True, **kwargs)
        self._task = ray.remote(run_placed)
        self._nodes = RayNodes(ray)
        #: Keyed by (job, attempt): a paused attempt that lost its lease is still here when
        #: the scheduler places the job's next one.
        self._attempts: dict[tuple[int, int], _Attempt] = {}
        self._cond = threading.Condition()
        self._closed = False
        self._waiter = threading.Thread(target=self._wait_loop, name="ray-executor", daemon=True)
        self._waiter.start()

    def submit(self, attempt: AttemptSpec) -> None:
        """Queue the attempt's task with Ray; it starts once its resources are free."""
        target = self.targets.get(attempt.entry)
        if target is None:
            raise RuntimeError(f"no Ray target for entry {attempt.entry!r}")
        res = attempt.resources
        options: dict[str, Any] = {"num_cpus": res.cpu, "num_gpus": res.gpu, "max_retries": 0}
        if res.memory_mb is not None:
            options["memory"] = res.memory_mb * 1024 * 1024
        if res.custom:
            options["resources"] = dict(res.custom)
        key = (attempt.job_id, attempt.attempt)
        with self._cond:
            if self._closed:
                raise RuntimeError("the Ray executor is closed")
            if key in self._attempts:
                raise RuntimeError(
                    f"job {attempt.job_id} attempt {attempt.attempt} already runs here"
                )
            # An earlier attempt of the job still here lost its lease (paused, cut off): the
            # scheduler gave the job to this one, so the stale task is ended.
            stale = [
                a
                for (job_id, number), a in self._attempts.items()
                if job_id == attempt.job_id and number < attempt.attempt
            ]
            name = f"aimass-job-{attempt.job_id}-attempt-{attempt.attempt}"
            task = self._task.options(name=name, **options)
            private = f"aimass-attempt-{attempt.job_id}-{attempt.attempt}-{uuid.uuid4().hex}"
            # CUDA_VISIBLE_DEVICES and the log path are chosen on the node (run_on_node).
            spec = child_spec(attempt, target, None, self.python_path, None)
            ref = task.remote(spec, private, self.kill_grace_s, self.sandbox)
            self._attempts[key] = _Attempt(spec=attempt, ref=ref, private=private)
            self._cond.notify_all()
        for old in stale:
            log.warning(
                "job %d attempt %d lost its lease; ending it for attempt %d",
                old.spec.job_id, old.spec.attempt, attempt.attempt,
            )  # fmt: skip
            self._cancel(old)

    def cancel(self, job_id: int) -> None:
        """Interrupt the job's attempts' tasks (which end their trees); kill lingering workers."""
        with self._cond:
            attempts = [a for (j, _), a in self._attempts.items() if j == job_id]
        for attempt in attempts:
            self._cancel(attempt)

    def _cancel(self, attempt: _Attempt) -> None:
        with self._cond:
            if attempt.cancelled or self._attempts.get(_key(attempt)) is not attempt:
                return
            attempt.cancelled = True
            timer = threading.Timer(self.kill_grace_s + 5.0, self._force, (attempt,))
            timer.daemon = True
            attempt.timer = timer
        with contextlib.suppress(Exception):
            _ray().cancel(attempt.ref, force=False)
        timer.start()

    def close(self) -> None:
        """Cancel every attempt (each reported through ``on_exit``); stop a Ray started here."""
        with self._cond:
            self._closed = True
            attempts = list(self._attempts.values())
        for attempt in attempts:
            self._cancel(attempt)
        with self._cond:
            self._cond.wait_for(lambda: not self._attempts, self.kill_grace_s + 15.0)
            leftovers = list(self._attempts.values())
            self._cond.notify_all()
        for attempt in leftovers:  # Ray no longer answers for them
            self._finish(attempt, {"returncode": -signal.SIGKILL, "error": "lost at close"})
        self._waiter.join(timeout=5)
        if self._owns_ray:
            self._owns_ray = False
            _ray().shutdown()

    def active(self) -> list[tuple[int, int]]:
        """The attempts queued or running on the cluster now."""
        with self._cond:
            return [(a.spec.job_id, a.spec.attempt) for a in self._attempts.values()]

    def waiting(self) -> list[tuple[int, int]]:
        """The attempts whose task has not started on a node yet (queued in Ray)."""
        with self._cond:
            return [
                (a.spec.job_id, a.spec.attempt)
                for a in self._attempts.values()
                if a.node is None and not a.cancelled
            ]

    # -- helpers ------------------------------------------------------------

    def _force(self, attempt: _Attempt) -> None:
        with self._cond:
            if self._attempts.get(_key(attempt)) is not attempt:
                return
            attempt.forced = True
        with contextlib.suppress(Exception):
            _ray().cancel(attempt.ref, force=True)

    def _wait_loop(self) -> None:
        ray = _ray()
        while True:
            with self._cond:
                self._cond.wait_for(lambda: self._attempts or self._closed)
                if self._closed and not self._attempts:
                    return
                attempts = list(self._attempts.values())
            # Each task is a generator: ready once its next item (placement, then result) is.
            by_ref = {id(a.ref): a for a in attempts}
            try:
                ready, _ = ray.wait(
                    [a.ref for a in attempts], num_returns=1, timeout=0.2, fetch_local=False
                )
            except Exception:
                log.exception("ray executor: ray.wait failed")
                time.sleep(0.2)
                continue
            for ref in ready:
                attempt = by_ref[id(ref)]
                try:
                    item = ray.get(next(attempt.ref))
                    if attempt.node is None and "node_id" in item:
                        self._record_node(attempt, str(item["node_id"]))
                        continue
                    result = item
                except Exception as exc:  # cancelled before it ran, its worker or node died
                    result = self._lost(attempt, exc)
                try:
                    self._finish(attempt, result)
                except Exception:
                    log.exception("ray executor: reporting job %d failed", attempt.spec.job_id)

    def _record_node(self, attempt: _Attempt, node_id: str) -> None:
        """The task started on ``node_id``: tell the scheduler, which records it on the job."""
        try:
            attempt.node = self._nodes.node_name(node_id)
        except Exception:  # Ray's node table unreachable: the id alone still names it
            attempt.node = f"ray:{node_id[:12]}"
        try:
            self._placed(attempt.spec.job_id, attempt.spec.attempt, attempt.node)
        except Exception:
            log.exception("ray executor: recording job %d's node failed", attempt.spec.job_id)

    @staticmethod
    def _lost(attempt: _Attempt, exc: BaseException) -> dict[str, Any]:
        """The result of a task Ray reports failed: killed (-9) unless a cancel ended it.

        A dead node (``NodeDiedError``) or worker (``WorkerCrashedError``) is not the
        job's fault: the negative code makes it an infrastructure failure, requeued to
        resume from its checkpoint on whatever node Ray gives the next attempt.
        """
        if isinstance(exc, StopIteration):
            exc = RuntimeError("the attempt's task ended without a result")
        killed = attempt.forced or not attempt.cancelled
        error = None
        if not attempt.cancelled:
            where = f" on {attempt.node}" if attempt.node else ""
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            error = f"{type(exc).__name__}{where}: {first}"
        return {"returncode": -(signal.SIGKILL if killed else signal.SIGTERM), "error": error}

    def _finish(self, attempt: _Attempt, result: dict[str, Any]) -> None:
        spec = attempt.spec
        with self._cond:
            if self._attempts.get(_key(attempt)) is not attempt:
                return
            del self._attempts[_key(attempt)]
            self._cond.notify_all()
        if attempt.timer is not None:
            attempt.timer.cancel()
        # The task deleted these, unless its worker was killed; this reaches only local paths.
        shutil.rmtree(spec.scratch_dir, ignore_errors=True)
        shutil.rmtree(Path(tempfile.gettempdir()) / attempt.private, ignore_errors=True)
        tail = result.get("log_tail")
        if self.log_dir is not None and isinstance(tail, str):
            path = self.log_dir / f"job-{spec.job_id}" / f"attempt-{spec.attempt}.log"
            with contextlib.suppress(OSError):
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(tail)
        outputs = result.get("outputs")
        error = result.get("error")
        self._report(
            AttemptExit(
                job_id=spec.job_id,
                attempt=spec.attempt,
                returncode=int(result["returncode"]),
                cancelled=attempt.cancelled,
                outputs=outputs if isinstance(outputs, dict) else None,
                error=error if isinstance(error, str) else None,
            )
        )
