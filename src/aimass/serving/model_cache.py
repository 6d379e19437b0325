"""A version's verified bytes in a node-local cache, keyed by checksum."""

from __future__ import annotations

import os
import uuid
from pathlib import Path
from typing import TYPE_CHECKING

from aimass.artifacts.names import validate_filename

if TYPE_CHECKING:
    from aimass.artifacts.store import ArtifactStore
    from aimass.deployments.entities import ResolvedVersion


def local_copy(store: ArtifactStore, cache_dir: Path, version: ResolvedVersion) -> Path:
    """The version's file under ``cache_dir/<sha256>/``, read from the store if not there yet.

    One temp name per load, not per process: two deployments of one version load
    side by side, and a shared name let one load move the other's half-written
    file away. The bytes are the same, so the last ``replace`` winning is harmless.
    """
    folder = cache_dir / version.sha256
    path = folder / validate_filename(version.filename)
    if path.is_file():
        return path
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / f".{os.getpid()}.{uuid.uuid4().hex}.part"
    try:
        with tmp.open("wb") as out:
            store.read_to(version.artifact_key, version.sha256, out)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path
