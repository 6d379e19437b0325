"""The inside of one attempt's process: import the entry's function and call it.

``run_attempt`` runs in a process forked by the zygote (``_zygote``), or in a
fresh interpreter through ``python -m aimass.executors._child SPEC.json``. The
process leads its own session, so cancelling ends its whole tree, and it dies
with the zygote that forked it. What the function returns (a JSON object) or
the error it raised is written to a result file in the scratch folder, which
the executor reads before it deletes the folder.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import os
import signal
import sys
import traceback
from pathlib import Path
from typing import Any

from aimass.executors.base import EXIT_INFRA

RESULT_FILE = ".aimass-result.json"
#: Exit statuses the executor reads: the entry raised, or could not be imported.
EXIT_FAILED = 1
EXIT_IMPORT = 2

_PR_SET_PDEATHSIG = 1
_libc: Any = None
_threadpools: Any = None


def warm() -> None:
    """Load what every attempt needs, once, in the zygote before it forks.

    That includes threadpoolctl's view of the loaded BLAS/OpenMP libraries: building
    it walks every shared library (10-25 ms), so each attempt only calls ``limit``.
    """
    global _libc, _threadpools
    if _libc is None:
        with contextlib.suppress(Exception):
            import ctypes

            _libc = ctypes.CDLL(None, use_errno=True)
    if _threadpools is None and "numpy" in sys.modules:
        with contextlib.suppress(Exception):
            from threadpoolctl import ThreadpoolController

            _threadpools = ThreadpoolController()


def _die_with_parent() -> None:
    # If the zygote (and so the server) dies, the attempt must not run on unseen;
    # its lease expires and the scheduler starts another attempt.
    warm()
    with contextlib.suppress(Exception):
        _libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


def _redirect(log_path: str | None) -> None:
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.close(null)
    target = log_path or os.devnull
    if log_path:
        Path(log_path).parent.mkdir(parents=True, exist_ok=True)
    out = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    os.dup2(out, 1)
    os.dup2(out, 2)
    os.close(out)


def _limit_threads(threads: str | None) -> None:
    # Libraries the zygote pre-imported sized their pools (to 1) before the fork; resize them.
    if threads and threads != "1" and _threadpools is not None:
        with contextlib.suppress(Exception):
            _threadpools.limit(limits=int(threads))


def _write_result(scratch: Path, result: dict[str, Any]) -> None:
    try:
        text = json.dumps(result)
    except (TypeError, ValueError) as exc:
        text = json.dumps({"error": f"the entry returned outputs that are not JSON: {exc}"})
    (scratch / RESULT_FILE).write_text(text)


def _infrastructure(exc: BaseException) -> bool:
    """True when the platform, not the job's code, made the entry fail."""
    from aimass.errors import InsufficientStorage, Unavailable

    return isinstance(exc, (InsufficientStorage, Unavailable))


def run_attempt(spec: dict[str, Any]) -> int:
    """Run the attempt described by ``spec``; returns the process's exit status."""
    with contextlib.suppress(PermissionError):
        os.setsid()  # already a session leader when started with start_new_session
    _die_with_parent()
    os.umask(0o077)
    _redirect(spec.get("log_path"))
    os.environ.update(spec["env"])
    _limit_threads(spec["env"].get("OMP_NUM_THREADS"))
    scratch = Path(spec["scratch_dir"])
    os.chdir(scratch)
    sys.path[:0] = spec.get("python_path", [])
    target = spec["target"]
    from aimass.runtime.heartbeat import start_heartbeat

    start_heartbeat(spec["env"])
    try:
        module_name, _, function_name = target.partition(":")
        function = getattr(importlib.import_module(module_name), function_name)
    except Exception as exc:
        traceback.print_exc()
        _write_result(scratch, {"error": f"cannot import {target!r}: {exc}"})
        return EXIT_IMPORT
    try:
        outputs = function(spec["params"])
    except BaseException as exc:
        traceback.print_exc()
        _write_result(scratch, {"error": f"{type(exc).__name__}: {exc}"})
        return EXIT_INFRA if _infrastructure(exc) else EXIT_FAILED
    finally:
        with contextlib.suppress(Exception):
            sys.stdout.flush()
            sys.stderr.flush()
    if outputs is not None and not isinstance(outputs, dict):
        _write_result(scratch, {"error": "the entry returned something other than a dict"})
        return EXIT_FAILED
    _write_result(scratch, {"outputs": outputs or {}})
    return 0


if __name__ == "__main__":
    sys.exit(run_attempt(json.loads(Path(sys.argv[1]).read_text())))
