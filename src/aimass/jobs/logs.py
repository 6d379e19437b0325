"""Attempt logs: a file on the node while the attempt runs, then a copy in the artifact store.

The local executor's processes write their stdout and stderr straight to
``<log_dir>/job-<id>/attempt-<n>.log``; a remote executor (Ray) ships the bytes
over HTTP and they are appended to the same file. When the attempt ends its
log is copied to the artifact store under ``jobs/<id>/logs/attempt-<n>.log``,
so it outlives the node.
"""

from __future__ import annotations

import os
from pathlib import Path

from aimass.artifacts.store import ArtifactStore

#: Bytes one call of ``read_from`` returns at most.
CHUNK = 256 * 1024


def log_path(log_dir: Path, job_id: int, attempt: int) -> Path:
    """Where the attempt's log is written on this node."""
    return log_dir / f"job-{job_id}" / f"attempt-{attempt}.log"


def archive_key(job_id: int, attempt: int) -> str:
    """The attempt's log in the artifact store."""
    return f"jobs/{job_id}/logs/attempt-{attempt}.log"


def append_log(log_dir: Path, job_id: int, attempt: int, data: bytes) -> None:
    """Append shipped bytes to the attempt's log file (owner-only)."""
    path = log_path(log_dir, job_id, attempt)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)


def archive_log(store: ArtifactStore, log_dir: Path, job_id: int, attempt: int) -> bool:
    """Copy the attempt's log to the artifact store; False when there is none."""
    path = log_path(log_dir, job_id, attempt)
    if not path.is_file() or path.stat().st_size == 0:
        return False
    with path.open("rb") as src:
        store.put_file(archive_key(job_id, attempt), src)
    return True


def read_log(store: ArtifactStore, log_dir: Path, job_id: int, attempt: int) -> bytes:
    """The attempt's whole log: the local file while it exists, else the archived copy."""
    path = log_path(log_dir, job_id, attempt)
    if path.is_file():
        return path.read_bytes()
    key = archive_key(job_id, attempt)
    if store.exists(key):
        return b"".join(store.open(key))
    return b""


def read_from(log_dir: Path, job_id: int, attempt: int, offset: int) -> bytes:
    """New bytes of the local log from ``offset`` (empty when there are none yet)."""
    path = log_path(log_dir, job_id, attempt)
    try:
        with path.open("rb") as src:
            src.seek(offset)
            return src.read(CHUNK)
    except FileNotFoundError:
        return b""
