"""Bytes no version refers to are swept at start, once they are old enough."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from aimass.api.server import prepare
from aimass.artifacts.store import ArtifactStore
from aimass.plugins import default_registries
from aimass.registry import service
from aimass.registry.entities import VersionCreate
from aimass.store.db import Database


def test_old_orphans_go_young_ones_and_referenced_bytes_stay(
    settings: Any, model_files: Any
) -> None:
    prepare(settings)
    db = Database(settings.resolved_database_url)
    store = ArtifactStore(settings.resolved_artifacts)
    try:
        kept = service.register_version(
            db, store, default_registries().flavors, project="default", name="m",
            upload=model_files.onnx, filename="model.onnx", spec=VersionCreate(),
            can_trust=False,
        )  # fmt: skip
        old = store.put("models/1/orphan-old", iter([b"left by a crash"]))
        young = store.put("datasets/1/orphan-young", iter([b"an upload in flight"]))
        day_ago = time.time() - 86400
        root = Path(settings.resolved_artifacts)
        os.utime(root / old.key, (day_ago, day_ago))
        for path in root.rglob("*"):
            if path.is_file() and "orphan" not in path.name:
                os.utime(path, (day_ago, day_ago))  # the version's own bytes are old too
        prepare(settings)
        assert not store.exists(old.key)
        assert store.exists(young.key)
        with db.session() as session:
            version, key = service.read_version_artifact(session, "default", "m", 1)
        assert store.exists(key)
        assert version.sha256 == kept.sha256
    finally:
        db.close()
