"""Two deployments of one version load at once; ``wait_ready`` waits through a passing failure."""

from __future__ import annotations

import hashlib
import shutil
import threading
import time
from pathlib import Path

import pytest
from tests.conftest import LiveServer, ModelFiles

from aimass import Client
from aimass.artifacts.store import ArtifactStore
from aimass.client import DeploymentTimeout
from aimass.deployments.entities import ReplicaStatus, ResolvedVersion
from aimass.flavors.registry import FlavorRegistry
from aimass.serving.reconciler import DeploymentReconciler
from aimass.serving.repository import ModelRepository
from aimass.store.db import Database


def test_loads_of_one_version_at_once_share_the_local_copy_safely(tmp_path: Path) -> None:
    store = ArtifactStore(str(tmp_path / "artifacts"))
    data = bytes(range(256)) * (16 * 1024)  # 4 MiB: long enough for the copies to overlap
    stored = store.put("models/m/1/model.bin", [data])
    version = ResolvedVersion(
        model="m", version=1, weight=1.0, flavor="onnx", filename="model.bin",
        artifact_key=stored.key, sha256=stored.sha256, trusted=False,
    )  # fmt: skip
    db = Database(f"sqlite:///{tmp_path / 'meta.db'}")
    reconciler = DeploymentReconciler(
        db, store, FlavorRegistry(), ModelRepository(), tmp_path / "cache"
    )
    # What run_once does for several deployments of one version: a copy per load, at once.
    loads = 8
    barrier = threading.Barrier(loads)
    paths: list[Path] = []
    errors: list[BaseException] = []

    def load() -> None:
        barrier.wait()
        try:
            paths.append(reconciler._local_copy(version))
        except BaseException as exc:  # the race showed as FileNotFoundError
            errors.append(exc)

    threads = [threading.Thread(target=load) for _ in range(loads)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    db.close()
    assert errors == []
    assert len(set(paths)) == 1
    assert hashlib.sha256(paths[0].read_bytes()).hexdigest() == stored.sha256
    assert [p.name for p in paths[0].parent.iterdir()] == ["model.bin"], "no temp file left"


@pytest.mark.backend("sqlite")
def test_wait_ready_waits_through_a_failure_the_replicas_retry(
    client: Client, live_server: LiveServer, model_files: ModelFiles
) -> None:
    version = client.models.upload("cancer", model_files.onnx)
    root = Path(live_server.settings.resolved_artifacts)
    stored = next(
        p for p in root.rglob("*")
        if p.is_file() and hashlib.sha256(p.read_bytes()).hexdigest() == version.sha256
    )  # fmt: skip
    aside = stored.with_name("aside")
    shutil.move(stored, aside)  # the bytes are not there yet (a store catching up)
    client.deployments.create("cancer", version=version.version)
    with pytest.raises(DeploymentTimeout, match="retrying") as info:
        client.deployments.wait_ready("cancer", timeout=1.5)
    assert "FileNotFoundError" in info.value.message
    # The status says when the next try is; read it while a replica is failed, not in the
    # moment of a retry, when the replica is loading again (seen under load in CI).
    failed: list[ReplicaStatus] = []
    deadline = time.monotonic() + 30
    while not failed and time.monotonic() < deadline:
        status = client.deployments.get("cancer").replica_status
        failed = [r for r in status if r.state == "failed"]
        if not failed:
            time.sleep(0.05)
    assert failed and all(r.retry_at is not None for r in failed)
    shutil.move(aside, stored)
    ready = client.deployments.wait_ready("cancer", timeout=30)
    assert ready.state == "ready"
    assert all(r.retry_at is None for r in ready.replica_status)
