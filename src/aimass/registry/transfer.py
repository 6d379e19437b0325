"""Model distribution: export a version to one bundle file, import it elsewhere."""

from __future__ import annotations

import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import IO

from pydantic import BaseModel, ConfigDict

from aimass._version import __version__
from aimass.artifacts.names import validate_name
from aimass.artifacts.store import ArtifactStore
from aimass.bundles.archive import read_bundle, write_bundle
from aimass.bundles.manifest import BundleManifest
from aimass.flavors.registry import FlavorRegistry
from aimass.registry import service
from aimass.registry.entities import ModelUpdate, ModelVersion, VersionCreate
from aimass.store.db import Database


class BundleImport(BaseModel):
    """Options for importing a bundle: a new model name, and whether to trust its file."""

    model_config = ConfigDict(extra="forbid")

    name: str | None = None
    trusted: bool = False


def export_version(
    db: Database, store: ArtifactStore, project: str, name: str, ref: str, out: IO[bytes]
) -> BundleManifest:
    """Write a version's bytes and metadata as one bundle into ``out``."""
    with db.session() as session:
        version, key = service.read_version_artifact(session, project, name, ref)
        model = service.read_model(session, project, name)
    manifest = BundleManifest(
        model=version.model,
        version=version.version,
        flavor=version.flavor,
        filename=version.filename,
        sha256=version.sha256,
        size=version.size,
        signature=version.signature,
        metrics=version.metrics,
        tags=version.tags,
        description=version.description,
        model_description=model.description,
        model_tags=model.tags,
        exported_at=datetime.now(UTC),
        aimass_version=__version__,
    )
    write_bundle(manifest, store.open(key, version.sha256), out)
    return manifest


def import_bundle(
    db: Database,
    store: ArtifactStore,
    flavors: FlavorRegistry,
    *,
    project: str,
    bundle: Path,
    spec: BundleImport,
    can_trust: bool,
    work_dir: Path,
    max_expanded_bytes: int,
) -> ModelVersion:
    """Register the bundle's artifact as a new version, keeping its bytes and metadata.

    Trust is not carried by the bundle: the importer decides it again.
    """
    with tempfile.TemporaryDirectory(dir=work_dir) as tmp:
        manifest, artifact = read_bundle(bundle, Path(tmp), max_expanded_bytes=max_expanded_bytes)
        name = validate_name(spec.name or manifest.model, "model name")
        version = service.register_version(
            db,
            store,
            flavors,
            project=project,
            name=name,
            upload=artifact,
            filename=manifest.filename,
            spec=VersionCreate(
                flavor=manifest.flavor,
                trusted=spec.trusted,
                signature=manifest.signature,
                metrics=manifest.metrics,
                tags=manifest.tags,
                description=manifest.description,
            ),
            can_trust=can_trust,
        )
    with db.session() as session:
        model = service.read_model(session, project, name)
        if version.version == 1 and not model.description and not model.tags:
            service.update_model(
                session,
                project,
                name,
                ModelUpdate(
                    description=manifest.model_description,
                    tags=dict(manifest.model_tags.items()),
                ),
            )
    return version
