"""A hostile script job: it tries to reach what only the server may touch, and reports.

Submitted by ``test_job_sandbox.py`` as the source of a script job. Each probe
records what it could do; the test asserts that every one of them failed.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any


def _read(path: str) -> str:
    try:
        with open(path, "rb") as file:
            return f"read {len(file.read())} bytes"
    except OSError as exc:
        return f"refused: {type(exc).__name__}"


def _list(path: str) -> list[str] | str:
    try:
        return sorted(os.listdir(path))
    except OSError as exc:
        return f"refused: {type(exc).__name__}"


def _write(folder: str) -> str:
    try:
        Path(folder, "planted-by-job.txt").write_text("x")
        return "written"
    except OSError as exc:
        return f"refused: {type(exc).__name__}"


def _environs_with(marker: str) -> list[str]:
    """Every /proc/<pid>/environ this process can read that holds ``marker``."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if marker.encode() in (entry / "environ").read_bytes():
                    found.append(entry.name)
            except OSError:
                pass
    return found


def main(params: dict[str, Any]) -> dict[str, Any]:
    marker = params["marker"]
    return {
        "database": _read(params["database"]) if params.get("database") else "no file",
        "token": _read(params["token"]),
        "artifact": _read(params["artifact"]),
        "artifact_dir": _list(params["artifacts"]),
        "server_home": _list(params["server_home"]),
        "os_home": _list(params["os_home"]),
        "write_project": _write(params["project"]),
        "server_environ": _read(f"/proc/{params['server_pid']}/environ"),
        "environs_with_marker": _environs_with(marker),
        "env_keys": sorted(k for k in os.environ if k.startswith("AIMASS_")),
        "marker_in_env": any(marker in value for value in os.environ.values()),
        "scratch_writable": _write(os.environ["AIMASS_SCRATCH_DIR"]),
    }
