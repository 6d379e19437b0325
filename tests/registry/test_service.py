"""Registry service without HTTP, on SQLite and PostgreSQL."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from aimass.artifacts.store import ArtifactStore
from aimass.errors import Conflict, InvalidInput, NotFound
from aimass.plugins import default_registries
from aimass.registry import service
from aimass.registry.entities import ModelCreate, VersionCreate, VersionQuery, VersionUpdate
from aimass.store.db import Database


@pytest.fixture
def store(tmp_path: Path) -> ArtifactStore:
    return ArtifactStore(str(tmp_path / "artifacts"))


def _register(db: Database, store: ArtifactStore, path: Path, **spec: Any) -> Any:
    return service.register_version(
        db,
        store,
        default_registries().flavors,
        project="default",
        name="m",
        upload=path,
        filename=path.name,
        spec=VersionCreate(**spec),
        can_trust=True,
    )


def test_concurrent_uploads_get_distinct_consecutive_versions(
    db: Database, store: ArtifactStore, model_files: Any
) -> None:
    with ThreadPoolExecutor(4) as pool:
        versions = list(pool.map(lambda _: _register(db, store, model_files.onnx), range(6)))
    assert sorted(v.version for v in versions) == [1, 2, 3, 4, 5, 6]


def test_duplicate_model_is_a_conflict(db: Database) -> None:
    with db.session() as session:
        service.create_model(session, "default", ModelCreate(name="m"))
    with pytest.raises(Conflict), db.session() as session:
        service.create_model(session, "default", ModelCreate(name="m"))


def test_archive_restore_and_delete_version(
    db: Database, store: ArtifactStore, model_files: Any
) -> None:
    _register(db, store, model_files.onnx, metrics={"f1": 0.9})
    _register(db, store, model_files.skops)
    with db.session() as session:
        service.set_alias(session, "default", "m", "production", 1)
        archived = service.update_version(
            session, "default", "m", 1, VersionUpdate(status="archived")
        )
        assert archived.status == "archived"
        found = service.search_versions(session, "default", VersionQuery(status="archived"))
        assert [v.version for v in found] == [1]
    service.delete_version(db, store, "default", "m", "1")
    with db.session() as session:
        assert service.read_model(session, "default", "m").aliases == {}
        with pytest.raises(NotFound):
            service.read_version(session, "default", "m", 1)
        assert service.read_version(session, "default", "m", 2).version == 2
    service.delete_model(db, store, "default", "m")
    assert [p for p in Path(store.root).rglob("*") if p.is_file()] == []


def test_numeric_alias_is_refused(db: Database, store: ArtifactStore, model_files: Any) -> None:
    _register(db, store, model_files.onnx)
    with pytest.raises(InvalidInput), db.session() as session:
        service.set_alias(session, "default", "m", "2", 1)
