"""Tiny job functions the executor tests run (imported inside attempt processes)."""

from __future__ import annotations

import os
import stat
import subprocess
import time
from pathlib import Path
from typing import Any


def noop(params: dict[str, Any]) -> dict[str, Any]:
    """Return at once."""
    return {"ok": True}


def describe(params: dict[str, Any]) -> dict[str, Any]:
    """Report what the attempt sees: its environment, cwd, scratch mode, process group."""
    scratch = Path(os.environ["AIMASS_SCRATCH_DIR"])
    (scratch / "work.txt").write_text("scratch is writable")
    keys = [
        "OMP_NUM_THREADS",
        "MKL_NUM_THREADS",
        "OPENBLAS_NUM_THREADS",
        "CUDA_VISIBLE_DEVICES",
        "AIMASS_JOB_ID",
        "AIMASS_JOB_ATTEMPT",
        "EXTRA",
    ]
    print("hello from the attempt")
    return {
        "env": {k: os.environ.get(k) for k in keys},
        "cwd": os.getcwd(),
        "scratch": str(scratch),
        "scratch_mode": stat.S_IMODE(scratch.stat().st_mode),
        "pid": os.getpid(),
        "pgid": os.getpgid(0),
        "sid": os.getsid(0),
        "params": params,
    }


def fail(params: dict[str, Any]) -> dict[str, Any]:
    """Raise like a job with a bug."""
    raise ValueError(f"bad input {params.get('x')}")


def sleep(params: dict[str, Any]) -> dict[str, Any]:
    """Sleep, recording wall-clock start and end."""
    start = time.time()
    time.sleep(float(params.get("seconds", 1.0)))
    return {"start": start, "end": time.time()}


def spawn_and_sleep(params: dict[str, Any]) -> dict[str, Any]:
    """Start a grandchild process, write both pids (and the scratch path) to a file, sleep."""
    grandchild = subprocess.Popen(["sleep", "300"])
    Path(params["pids_file"]).write_text(
        f"{os.getpid()} {grandchild.pid} {os.environ['AIMASS_SCRATCH_DIR']}"
    )
    time.sleep(300)
    return {}


def loaded(params: dict[str, Any]) -> dict[str, Any]:
    """Which heavy libraries the attempt found already imported, and its parent (the zygote)."""
    import sys

    return {"numpy": "numpy" in sys.modules, "parent": os.getppid()}
