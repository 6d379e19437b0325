"""What one server process holds: settings, database, artifact store, flavors."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from aimass.artifacts.store import ArtifactStore
from aimass.config import Settings
from aimass.flavors.registry import FlavorRegistry, default_flavor_registry
from aimass.jobs.catalog import EntryCatalog, default_catalog
from aimass.store.db import Database

if TYPE_CHECKING:
    from aimass.deployments.reconciler import DeploymentReconciler
    from aimass.executors.base import Executor
    from aimass.pipelines.runner import PipelineRunner
    from aimass.scheduler.scheduler import Scheduler
    from aimass.schedules.runner import ScheduleRunner
    from aimass.serving._auth_cache import AuthCache
    from aimass.serving.repository import ModelRepository


@dataclass
class AppState:
    """Long-lived parts shared by every request of one process."""

    settings: Settings
    db: Database
    store: ArtifactStore
    flavors: FlavorRegistry
    repository: ModelRepository | None = field(default=None)
    reconciler: DeploymentReconciler | None = field(default=None)
    catalog: EntryCatalog = field(default_factory=default_catalog)
    scheduler: Scheduler | None = field(default=None)
    executor: Executor | None = field(default=None)
    pipeline_runner: PipelineRunner | None = field(default=None)
    schedule_runner: ScheduleRunner | None = field(default=None)
    #: The inference path's token cache; cleared when a token is revoked in this process.
    auth_cache: AuthCache | None = field(default=None)

    @classmethod
    def from_settings(cls, settings: Settings) -> AppState:
        """Open the database and artifact store the settings name."""
        settings.spool_dir.mkdir(parents=True, exist_ok=True)
        return cls(
            settings=settings,
            db=Database(settings.resolved_database_url),
            store=ArtifactStore(settings.resolved_artifacts),
            flavors=default_flavor_registry(),
        )

    def close(self) -> None:
        """Release database connections."""
        self.db.close()
