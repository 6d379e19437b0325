"""``Platform``: the composition root, built once per process from ``Settings``.

It owns the database, the artifact store, the plugin registries, the job entry
catalogue, the model repository this process serves from, the executor and
the background services, and the notifier that wakes them. ``api/`` turns it
into HTTP (``create_app(platform)``); the CLI and the demo use it without HTTP.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from aimass.artifacts.store import ArtifactStore
from aimass.auth.cache import AuthCache
from aimass.config import Settings
from aimass.devices import detect_gpus
from aimass.entities.monitoring import AlertRule
from aimass.errors import Unavailable
from aimass.flavors.registry import FlavorRegistry
from aimass.jobs.catalog import EntryCatalog
from aimass.monitoring.alerts import AlertEngine, AlertEvaluator, Source, failed_jobs
from aimass.monitoring.drift import DriftSettings
from aimass.monitoring.drift_service import DriftService, DriftWatcher
from aimass.monitoring.events import record_event
from aimass.monitoring.node_history import NodeMonitor, list_nodes
from aimass.monitoring.prediction_log import PredictionLog, PredictionLogWriter
from aimass.monitoring.webhook import TargetPolicy, WebhookSink
from aimass.platform.notifier import LocalNotifier, Notifier, Topic
from aimass.platform.pg_notifier import PostgresNotifier
from aimass.platform.services import LeaseKeeper, Services, SharedLeadership
from aimass.plugins import PluginLoad, Registries
from aimass.serving.autoscaler import Autoscaler
from aimass.serving.reconciler import DeploymentReconciler
from aimass.serving.repository import ModelRepository
from aimass.store.db import Database
from aimass.store.references import OrphanSweeper

if TYPE_CHECKING:
    from aimass.auth.entities import Principal
    from aimass.executors.base import Executor
    from aimass.pipelines.runner import PipelineRunner
    from aimass.platform.jobs import JobServices
    from aimass.scheduler.scheduler import Scheduler
    from aimass.schedules.runner import ScheduleRunner

log = logging.getLogger(__name__)

_JOBS_OFF = "jobs are off in this server; start it with --jobs (AIMASS_JOBS=true)"


def entry_catalog(registries: Registries) -> EntryCatalog:
    """The job entries this process knows: the one place the catalogue is taken from."""
    return EntryCatalog.of(registries.entries)


class Platform:
    """Everything one process holds; built once (``from_settings``), started and stopped once.

    ``start()`` (on the event loop) builds the jobs side when ``Settings.jobs``
    is on and starts every service in dependency order; ``stop()`` stops them in
    reverse and releases what the platform holds. ``notify(topic)`` is how a
    write tells the services that reconcile it.
    """

    def __init__(
        self,
        settings: Settings,
        db: Database,
        store: ArtifactStore,
        registries: Registries,
        *,
        notifier: Notifier | None = None,
    ) -> None:
        self.settings = settings
        self.db = db
        self.store = store
        self.registries = registries
        self.catalog = entry_catalog(registries)
        self.notifier: Notifier = notifier if notifier is not None else LocalNotifier()
        self.leadership = SharedLeadership(db, lease_s=settings.leader_lease_s)
        self.services = Services(self.notifier, self.leadership)
        self.services.add(
            LeaseKeeper(self.leadership, on_lead=self.services.wake_leader_services), "every"
        )
        #: The deployments this process serves from, swapped in by the reconciler.
        self.repository = ModelRepository()
        #: Bearer checks of the inference path; cleared when a token is revoked here.
        self.auth_cache = AuthCache(self._authenticate, grace_s=settings.auth_grace_s)
        self.reconciler = DeploymentReconciler(
            db,
            store,
            self.flavors,
            self.repository,
            settings.model_cache_dir,
            interval=settings.reconcile_interval,
            freeze_gc=settings.tune_gc,
            combiners=registries.fusion_strategies,
            max_queue_wait_s=settings.max_queue_wait_s or None,
            ray_namespace=settings.ray_namespace,
            shared_weights=settings.onnx_shared_weights,
            runner_own_cores=settings.runner_own_cores,
            ray_address=self._ray_address,
            gpus=detect_gpus(settings.gpus),
        )
        self.services.add(self.reconciler, "every", topics=("deployments",))
        #: Grows and shrinks autoscaled deployments' runner processes (decided once per node).
        self.autoscaler = Autoscaler(self.repository, interval=settings.reconcile_interval)
        self.services.add(self.autoscaler, "every")
        #: Answered predictions, sampled, queued here and written by the writer loop.
        self.prediction_log = PredictionLog(
            settings.prediction_log_sample,
            settings.prediction_log_rates,
            settings.prediction_log_queue,
        )
        self.services.add(
            PredictionLogWriter(self.prediction_log, store, settings.prediction_log_flush_s),
            "every",
        )
        #: Drift reports of logged traffic; the watcher turns new drift into events.
        self.drift = DriftService(db, store, registries, DriftSettings(alpha=settings.drift_alpha))
        self.drift_watcher = DriftWatcher(
            self.drift,
            interval=settings.drift_interval_s,
            window_s=settings.drift_window_s,
            min_rows=settings.drift_min_rows,
        )
        self.services.add(self.drift_watcher, "leader")
        #: This node's CPU, memory, disk and network history (every process samples its node).
        self.node_monitor = NodeMonitor(
            db,
            settings.node_interval_s,
            settings.node_retention_days * 86400,
            lock_file=settings.home / "node-monitor.lock",
        )
        self.services.add(self.node_monitor, "every")
        self.alerts = self._alerts(settings, registries)
        self.services.add(self.alerts, "leader")
        #: Abandoned writes and unreferenced bytes in the shared store, swept by the leader.
        self.sweeper = OrphanSweeper(
            db, store, settings.sweep_interval_s, settings.abandoned_after_s, self.leadership
        )
        self.services.add(self.sweeper, "leader")
        self._jobs: JobServices | None = None

    def _alerts(self, settings: Settings, registries: Registries) -> AlertEvaluator:
        """The alert evaluator: rules and webhooks from the settings, samples from monitoring."""
        policy = TargetPolicy(settings.alert_allow_hosts.split(","))
        for i, url in enumerate(settings.alert_webhooks, start=1):
            registries.alert_sinks.register(WebhookSink(url, policy, name=f"webhook-{i}"))
        engine = AlertEngine(
            [AlertRule.model_validate(rule) for rule in settings.alert_rules],
            registries.alert_sinks.all(),
            on_event=self._alert_event,
            external_url=settings.resolved_public_url,
        )
        log = self.prediction_log
        sources: list[Source] = [
            lambda: {"queue_full": {"prediction-log": log.depth / log.capacity}},
            lambda: {"drift_score": dict(self.drift_watcher.scores)},
            self._node_samples,
            self._job_samples,
        ]
        return AlertEvaluator(engine, sources, settings.alert_interval_s)

    def _node_samples(self) -> dict[str, dict[str, float]]:
        """``node_down``: 1 for a node with no sample for three intervals, else 0."""
        with self.db.session() as session:
            nodes = list_nodes(session, 3 * self.settings.node_interval_s)
        return {"node_down": {n.node: float(n.down) for n in nodes}}

    def _job_samples(self) -> dict[str, dict[str, float]]:
        """``job_failed``: jobs per entry that failed in the last ten minutes."""
        since = datetime.now(UTC) - timedelta(minutes=10)
        with self.db.session() as session:
            return failed_jobs(session, since)

    def _alert_event(self, alert: dict[str, Any]) -> None:
        labels = alert["labels"]
        with self.db.session() as session:
            record_event(
                session,
                project="default",
                kind="alert",
                subject=labels["subject"],
                severity=labels["severity"],
                message=f"{labels['alertname']} {alert['status']}: "
                + alert["annotations"]["summary"],
                details=alert,
            )

    @classmethod
    def from_settings(cls, settings: Settings, plugins: PluginLoad | None = None) -> Platform:
        """Open the database and artifact store the settings name and load the plugins.

        ``plugins``: their load if the caller started it already (the server does,
        early). With ``strict_plugins`` a plugin that fails is a ``PluginError`` here.
        """
        if plugins is None:
            plugins = PluginLoad(timeout_s=settings.plugin_timeout_s)
        registries = plugins.result(strict=settings.strict_plugins)
        settings.spool_dir.mkdir(parents=True, exist_ok=True)
        url = settings.resolved_database_url
        notifier: Notifier | None = None
        if settings.pg_notify and url.startswith("postgresql"):
            notifier = PostgresNotifier(url)  # other servers' loops wake on our writes
        return cls(
            settings,
            Database(url),
            ArtifactStore(settings.resolved_artifacts),
            registries,
            notifier=notifier,
        )

    @property
    def flavors(self) -> FlavorRegistry:
        """The model formats the plugins registered (built-ins first)."""
        return self.registries.flavors

    def notify(self, topic: Topic) -> None:
        """Tell the services that reconcile ``topic`` that it changed (after the commit)."""
        self.notifier.publish(topic)

    def _authenticate(self, secret: str | None) -> Principal:
        from aimass.auth.service import authenticate

        with self.db.session() as session:
            return authenticate(session, secret)

    # -- the jobs side (Settings.jobs) ----------------------------------------

    def _jobs_or_raise(self) -> JobServices:
        if self._jobs is None:
            raise Unavailable(_JOBS_OFF)
        return self._jobs

    @property
    def on_ray(self) -> bool:
        """True when this process joins a Ray cluster (jobs on the Ray executor), which
        deployments with ``resources.runner: "ray"`` need."""
        return self.settings.jobs and self.settings.job_executor == "ray"

    def _ray_address(self) -> str | None:
        """The Ray cluster that replica actors (runner "ray") join: the jobs' Ray driver's
        (it runs in a child process), or None off Ray or while it is not connected."""
        if not self.on_ray or self._jobs is None:
            return None
        address: str | None = getattr(self._jobs.executor, "address", None)
        return address

    @property
    def executor(self) -> Executor:
        """This process's executor; ``Unavailable`` when jobs are off."""
        return self._jobs_or_raise().executor

    @property
    def scheduler(self) -> Scheduler:
        """This process's scheduler; ``Unavailable`` when jobs are off."""
        return self._jobs_or_raise().scheduler

    @property
    def pipeline_runner(self) -> PipelineRunner:
        """The pipeline runner; ``Unavailable`` when jobs are off."""
        return self._jobs_or_raise().pipeline_runner

    @property
    def schedule_runner(self) -> ScheduleRunner:
        """The schedule runner; ``Unavailable`` when jobs are off."""
        return self._jobs_or_raise().schedule_runner

    def _add_jobs(self) -> None:
        from aimass.platform.jobs import build_jobs

        jobs = build_jobs(
            self.settings,
            self.db,
            self.store,
            self.catalog,
            self.leadership,
            lambda: self.notify("jobs"),
        )
        self._jobs = jobs
        # The scheduler runs everywhere: it keeps this process's attempts' leases,
        # cancels and exits. Placement (leases, timeouts, starting queued jobs) runs
        # only while ``self.leadership`` is held.
        self.services.add(jobs.scheduler, "every", topics=("jobs",))
        # Every process ships its running attempts' logs, so any server can follow them.
        self.services.add(jobs.log_shipper, "every")
        self.services.add(jobs.placement, "leader", topics=("jobs",))
        self.services.add(jobs.pipeline_runner, "leader", topics=("jobs", "pipelines"))
        self.services.add(jobs.schedule_runner, "leader", topics=("schedules",))

    # -- life ---------------------------------------------------------------

    async def start(self) -> None:
        """Build the jobs side if enabled, then start every service (on the running loop)."""
        if self.settings.jobs and self._jobs is None:
            self._add_jobs()
        if isinstance(self.notifier, PostgresNotifier):
            self.notifier.start()
        self.services.start()
        await asyncio.to_thread(self._warm_flavors)

    def _warm_flavors(self) -> None:
        """Let each flavor the registry holds prepare (heavy imports in the background), so a
        deployment created later does not pay for them."""
        from aimass.registry.service import flavors_in_use

        try:
            with self.db.session() as session:
                names = flavors_in_use(session)
        except Exception as exc:  # a warm-up is an optimisation: never a reason not to start
            log.warning("could not list the flavors in use: %s", exc)
            return
        for name in sorted(set(names) & set(self.flavors.names())):
            self.flavors.get(name).warm("this installation holds such models")

    async def stop(self) -> None:
        """Stop the services (reverse order), end this process's attempts, release the rest."""
        try:
            await self.services.stop()
            if isinstance(self.notifier, PostgresNotifier):
                await asyncio.to_thread(self.notifier.close)
            if self._jobs is not None:
                await asyncio.to_thread(self._jobs.executor.close)
            await self.repository.close()
        finally:
            await asyncio.to_thread(self.leadership.release)
            self.close()

    def close(self) -> None:
        """Release database connections (for users that never started the platform)."""
        self.db.close()
