"""Deployment desired state, on SQLite and PostgreSQL."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from aimass.artifacts.store import ArtifactStore
from aimass.deployments import service
from aimass.deployments.entities import DeploymentCreate, DeploymentUpdate, TrafficRoute
from aimass.errors import Conflict, InvalidInput, NotFound
from aimass.plugins import default_registries
from aimass.registry import service as registry
from aimass.registry.entities import VersionCreate, VersionUpdate
from aimass.store.db import Database


@pytest.fixture
def db(db: Database, tmp_path: Path, model_files: Any) -> Database:
    """The shared ``db`` with model ``m``: version 1 (ONNX) and version 2 (skops)."""
    database = db
    store = ArtifactStore(str(tmp_path / "artifacts"))
    for path in (model_files.onnx, model_files.skops):
        registry.register_version(
            database,
            store,
            default_registries().flavors,
            project="default",
            name="m",
            upload=path,
            filename=path.name,
            spec=VersionCreate(),
            can_trust=False,
        )
    return database


def test_deployment_follows_its_alias(db: Database) -> None:
    with db.session() as session:
        registry.set_alias(session, "default", "m", "production", 1)
        created = service.create_deployment(
            session, "default", DeploymentCreate(model="m", alias="production")
        )
        assert created.name == "m"
        assert created.state == "pending"
    with db.session() as session:
        (desired,) = service.desired_deployments(session)
        assert [v.version for v in desired.versions] == [1]
        before = desired.fingerprint()
        registry.set_alias(session, "default", "m", "production", 2)
    with db.session() as session:
        (desired,) = service.desired_deployments(session)
        assert [v.version for v in desired.versions] == [2]
        assert desired.versions[0].flavor == "sklearn"
        assert desired.fingerprint() != before


def test_traffic_split_and_update_bumps_revision(db: Database) -> None:
    routes = [TrafficRoute(version=1, weight=90), TrafficRoute(version=2, weight=10)]
    with db.session() as session:
        service.create_deployment(
            session, "default", DeploymentCreate(name="canary", model="m", traffic=routes)
        )
        updated = service.update_deployment(
            session, "default", "canary", DeploymentUpdate(version=2)
        )
        assert updated.revision == 2
        assert [(r.version, r.weight) for r in updated.routes] == [(2, 100.0)]


def test_replica_reports_make_the_state(db: Database) -> None:
    with db.session() as session:
        created = service.create_deployment(
            session, "default", DeploymentCreate(model="m", version=1)
        )
        service.report_replica(session, created.id, "host:1", "ready", None, [1])
        service.report_replica(session, created.id, "host:2", "loading", None, [1])
        assert service.read_deployment(session, "default", "m").state == "loading"
        service.report_replica(session, created.id, "host:2", "failed", "bad file", [1])
        found = service.read_deployment(session, "default", "m")
        assert found.state == "failed"
        assert {r.reason for r in found.replica_status} == {None, "bad file"}


def test_refusals(db: Database) -> None:
    with db.session() as session:
        with pytest.raises(NotFound, match="no version 9"):
            service.create_deployment(session, "default", DeploymentCreate(model="m", version=9))
        with pytest.raises(NotFound, match="no alias"):
            service.create_deployment(session, "default", DeploymentCreate(model="m", alias="x"))
        with pytest.raises(NotFound, match="model 'nope'"):
            service.create_deployment(session, "default", DeploymentCreate(model="nope", version=1))
        registry.update_version(session, "default", "m", 1, VersionUpdate(status="archived"))
        with pytest.raises(InvalidInput, match="archived"):
            service.create_deployment(session, "default", DeploymentCreate(model="m", version=1))
        service.create_deployment(session, "default", DeploymentCreate(model="m", version=2))
    with pytest.raises(Conflict), db.session() as session:
        service.create_deployment(session, "default", DeploymentCreate(model="m", version=2))
    with pytest.raises(ValidationError, match="exactly one"):
        DeploymentCreate(model="m", version=1, alias="production")
    with pytest.raises(ValidationError):
        TrafficRoute(version=1, weight=-5)


def test_autoscaling_settings_are_kept_changed_live_and_turned_off(db: Database) -> None:
    scaling = {"min_replicas": 1, "max_replicas": 3, "upscale_delay_s": 5}
    with db.session() as session:
        created = service.create_deployment(
            session,
            "default",
            DeploymentCreate.model_validate(
                {"model": "m", "version": 1, "resources": {"runner": "process"},
                 "autoscaling": scaling}
            ),
        )  # fmt: skip
        assert created.autoscaling is not None and created.autoscaling.max_replicas == 3
        (desired,) = service.desired_deployments(session)
        before = desired.fingerprint()
        changed = service.update_deployment(
            session, "default", "m",
            DeploymentUpdate.model_validate({"autoscaling": {**scaling, "max_replicas": 5}}),
        )  # fmt: skip
        assert changed.autoscaling is not None and changed.autoscaling.max_replicas == 5
        (desired,) = service.desired_deployments(session)
        # New settings apply live: nothing to reload.
        assert desired.fingerprint() == before
        assert desired.autoscaling is not None and desired.autoscaling.max_replicas == 5
        with pytest.raises(InvalidInput, match=r"set resources\.runner to 'process'"):
            service.update_deployment(
                session, "default", "m",
                DeploymentUpdate.model_validate({"resources": {"runner": "in_process"}}),
            )  # fmt: skip
        off = service.update_deployment(
            session, "default", "m", DeploymentUpdate.model_validate({"autoscaling": None})
        )
        assert off.autoscaling is None
        assert "autoscaling" not in off.model_dump(mode="json")
        service.report_replica(session, off.id, "node:1", "ready", None, [1], scale=(2, 3))
        (status,) = service.read_deployment(session, "default", "m").replica_status
        assert (status.replicas, status.desired_replicas) == (2, 3)
