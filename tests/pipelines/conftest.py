"""A database on each backend, a small entry catalogue, a model with two versions, a step."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel, ConfigDict
from sqlalchemy.orm import Session

from aimass.jobs import service as jobs
from aimass.jobs.catalog import Entry, EntryCatalog
from aimass.jobs.entities import Job, JobCreate
from aimass.jobs.submitting_loop import SubmitJob
from aimass.store.db import Database

#: A step that moves ``production`` of ``iris`` to the trained version when its F1 beats it.
PROMOTE: dict[str, Any] = {
    "name": "promote",
    "needs": ["evaluate"],
    "when": {
        "left": "steps.evaluate.outputs.metrics.f1",
        "op": ">",
        "right": {
            "alias_metric": {"model": "iris", "alias": "production", "metric": "f1", "default": 0}
        },
    },
    "action": {
        "kind": "set_alias",
        "model": "iris",
        "alias": "production",
        "version_from": "steps.train.outputs.model_version",
    },
}


class TrainParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    C: float = 1.0


class EvaluateParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    model_version: int
    threshold: float = 0.5


def toy_catalog() -> EntryCatalog:
    """Two entries: ``toy.train`` and ``toy.evaluate`` (which needs a model version)."""
    catalog = EntryCatalog()
    catalog.add(Entry("toy.train", frozenset({"train"}), "toy:train", "trains", TrainParams))
    catalog.add(
        Entry("toy.evaluate", frozenset({"evaluate"}), "toy:evaluate", "scores", EvaluateParams)
    )
    return catalog


@pytest.fixture
def catalog() -> EntryCatalog:
    return toy_catalog()


@pytest.fixture
def submit(catalog: EntryCatalog) -> SubmitJob:
    """What the app injects: submit_job with the catalogue."""

    def submit_job(session: Session, project: str, spec: JobCreate) -> Job:
        return jobs.submit_job(session, project, spec, catalog)

    return submit_job


@pytest.fixture
def iris(db: Database, tmp_path: Path, model_files: Any) -> Database:
    """Model ``iris`` with version 1 (f1 0.9, alias production) and version 2 (no metrics)."""
    from aimass.artifacts.store import ArtifactStore
    from aimass.plugins import default_registries
    from aimass.registry import service as registry
    from aimass.registry.entities import VersionCreate

    store = ArtifactStore(str(tmp_path / "artifacts"))
    for path, metrics in ((model_files.onnx, {"f1": 0.9}), (model_files.skops, {})):
        registry.register_version(
            db,
            store,
            default_registries().flavors,
            project="default",
            name="iris",
            upload=path,
            filename=path.name,
            spec=VersionCreate(metrics=metrics),
            can_trust=False,
        )
    with db.session() as session:
        registry.set_alias(session, "default", "iris", "production", 1)
    return db
