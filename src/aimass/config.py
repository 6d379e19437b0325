"""Settings: the only module that reads ``AIMASS_*`` environment variables."""

from __future__ import annotations

import ipaddress
import json
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_MAX_UPLOAD = 2 * 1024**3
DEFAULT_MAX_JOB_FILE = 4 * 1024**3


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class Settings(BaseSettings):
    """Server configuration from ``AIMASS_*`` variables; CLI flags override them."""

    model_config = SettingsConfigDict(env_prefix="AIMASS_", extra="ignore")

    home: Path = Field(default_factory=lambda: Path.home() / ".aimass")
    database_url: str | None = None
    artifacts: str | None = None
    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=0, le=65535)
    workers: int = Field(default=1, ge=1, le=64)
    max_upload_bytes: int = Field(default=DEFAULT_MAX_UPLOAD, ge=1)
    auth: bool = True
    max_inference_bytes: int = Field(default=64 * 1024 * 1024, ge=1)
    max_tensor_elements: int = Field(default=16 * 1024 * 1024, ge=1)
    #: The Open Inference Protocol over gRPC on this port (the ``grpc`` extra); None: off.
    grpc_port: int | None = Field(default=None, ge=1, le=65535)
    #: ``/v2/health/live`` and ``/ready`` also on this port, answered off the serving loop
    #: (what an orchestrator's probes should use: they answer under any crowd); None: off.
    probe_port: int | None = Field(default=None, ge=1, le=65535)
    #: Live answers 503 on the probe port once the serving loop has not turned for this long.
    probe_stall_s: float = Field(default=30.0, gt=0, le=3600)
    #: Caps on what a dataset upload may hold once parsed, checked before it is materialised.
    dataset_max_rows: int = Field(default=10_000_000, ge=1)
    dataset_max_cells: int = Field(default=100_000_000, ge=1)
    dataset_max_bytes: int = Field(default=1024**3, ge=1)
    reconcile_interval: float = Field(default=0.5, gt=0, le=60)
    #: How often the leader removes abandoned writes and bytes no version refers to.
    sweep_interval_s: float = Field(default=600.0, gt=0, le=86400)
    #: Age (since the last byte written) past which an unfinished write, a spool file or
    #: unreferenced bytes count as abandoned; keep it above the longest upload's stalls.
    abandoned_after_s: float = Field(default=3600.0, gt=0, le=30 * 86400)
    tune_gc: bool = True
    #: Serve cached ONNX models with their weights memory-mapped from one file per node,
    #: shared by the node's workers (off: each worker holds its own copy on its heap).
    onnx_shared_weights: bool = True
    #: Pin each runner process to ``resources.cpu`` of the node's cores that the server
    #: may not use (when the server is confined to some, e.g. by ``taskset``); off: a
    #: runner runs where the server does.
    runner_own_cores: bool = False
    #: The GPUs this node offers to deployments and jobs (``0,1``; ``none`` for none),
    #: instead of those the NVIDIA driver lists. None: the driver's.
    gpus: str | None = Field(
        default=None, pattern=r"^\s*(?i:none)?\s*$|^\s*\d+(\s*,\s*\d+)*\s*,?\s*$"
    )
    jobs: bool = True
    job_executor: Literal["local", "ray"] = "local"
    job_slots: float | None = Field(default=None, gt=0)
    job_lease_s: float = Field(default=30.0, ge=0.5, le=3600)
    #: How long the leader's lease lasts without renewal: a paused or cut-off leader is
    #: replaced after it; a killed one within a second (its database session is gone).
    leader_lease_s: float = Field(default=10.0, ge=0.5, le=600)
    #: On PostgreSQL, wake other servers' loops with NOTIFY after a write (a hint: they poll too).
    pg_notify: bool = True
    ray_address: str | None = None
    #: The Ray namespace of this installation's replica actors (``runner: "ray"``): every
    #: server of one installation shares them there; two installations on one Ray cluster
    #: need two namespaces.
    ray_namespace: str = Field(default="aimass-serving", pattern=r"^[A-Za-z0-9_.-]{1,64}$")
    #: How long the Ray head may not answer before the attempts on Ray are requeued (they
    #: then wait, with that reason, until the head answers again).
    ray_head_lost_s: float = Field(default=10.0, ge=1.0, le=3600)
    #: How job code is fenced off: ``bwrap`` (bubblewrap), or ``none`` (unsafe: jobs can read
    #: the server's database, token and artifacts; for hosts without bubblewrap only).
    job_sandbox: Literal["bwrap", "none"] = "bwrap"
    public_url: str | None = None
    #: Extra names the Host header may carry (comma list; ``*`` turns the check off).
    allowed_hosts: str = ""
    header_timeout_s: float = Field(default=10.0, gt=0, le=3600)
    body_timeout_s: float = Field(default=30.0, gt=0, le=3600)
    #: Open connections one worker takes (kept below the open-file limit, raised to its hard
    #: limit at start). High on purpose: past it a client is refused and reconnects at once,
    #: which a crowd turns into a storm in the kernel's accept queue, while a connection
    #: within it that the in-flight cap refuses is parked at no cost to the loop.
    max_connections: int = Field(default=16_384, ge=1, le=1_000_000)
    #: Inference requests one worker runs at once; past it a new one is answered 503 with
    #: Retry-After before any work, so the admitted ones keep their latency (0: no cap).
    max_inflight: int = Field(default=512, ge=0, le=1_000_000)
    #: A request that waited longer than this for its model's batch is refused with 429
    #: instead of run, which bounds what admitted requests wait (0: no bound).
    max_queue_wait_s: float = Field(default=0.0, ge=0, le=3600)
    #: While the database is unreachable, inference keeps accepting a token verified this
    #: many seconds before (its 2 s cache entry expired less than this ago); 0 turns it off.
    auth_grace_s: float = Field(default=60.0, ge=0, le=86400)
    #: Largest checkpoint, job artifact or script source a job may send (streamed to the
    #: artifact store, never held in memory).
    max_job_file_bytes: int = Field(default=DEFAULT_MAX_JOB_FILE, ge=1)
    #: Share of answered requests written to the prediction log (0 off, 1 all).
    prediction_log_sample: float = Field(default=0.0, ge=0, le=1)
    #: Per-deployment sampling rates (JSON object: ``{"iris": 1.0}``); others use the default.
    prediction_log_rates: dict[str, float] = Field(default_factory=dict)
    #: Records the in-memory log queue holds before it drops (and counts) new ones.
    prediction_log_queue: int = Field(default=100_000, ge=1, le=10_000_000)
    prediction_log_flush_s: float = Field(default=1.0, gt=0, le=3600)
    #: Drift: seconds between checks, the window's span, and the family-wise false-alarm rate.
    drift_interval_s: float = Field(default=30.0, gt=0, le=86400)
    drift_window_s: float = Field(default=300.0, gt=0, le=7 * 86400)
    drift_min_rows: int = Field(default=200, ge=10)
    drift_alpha: float = Field(default=0.005, gt=0, lt=1)
    #: Alert rules (JSON list of ``AlertRule`` objects), webhook URLs (JSON list), the
    #: hosts or addresses webhooks may reach although internal (comma list), and the tick.
    alert_rules: list[dict[str, Any]] = Field(default_factory=list)
    alert_webhooks: list[str] = Field(default_factory=list)
    alert_allow_hosts: str = ""
    alert_interval_s: float = Field(default=15.0, gt=0, le=3600)
    #: Node history: seconds between samples, and days the (downsampled) history is kept.
    node_interval_s: float = Field(default=5.0, gt=0, le=3600)
    node_retention_days: float = Field(default=7.0, gt=0, le=3650)
    #: Text generation (the OpenAI routes): most new tokens a request may ask for, generations
    #: at once in a process (one more is a 429), and seconds one may run.
    llm_max_tokens: int = Field(default=512, ge=1, le=32768)
    llm_max_streams: int = Field(default=4, ge=1, le=1024)
    llm_timeout_s: float = Field(default=60.0, gt=0, le=3600)
    #: Days the structured system log (``$AIMASS_HOME/logs/system``) is kept.
    system_log_retention_days: float = Field(default=14.0, gt=0, le=3650)
    #: Any plugin that fails to load is a start-up error (for CI), not a skipped plugin.
    strict_plugins: bool = False
    #: How long a third-party plugin's import and ``register`` may take before it is failed.
    plugin_timeout_s: float = Field(default=10.0, gt=0, le=600)

    @field_validator("home")
    @classmethod
    def _expand_home(cls, value: Path) -> Path:
        return value.expanduser()

    @property
    def resolved_database_url(self) -> str:
        """The database URL, defaulting to SQLite under ``home``."""
        return self.database_url or f"sqlite:///{self.home / 'aimass.db'}"

    @property
    def resolved_artifacts(self) -> str:
        """The artifact root, defaulting to a folder under ``home``."""
        return self.artifacts or str(self.home / "artifacts")

    @property
    def token_file(self) -> Path:
        """Where the first admin token is saved, readable by its owner only."""
        return self.home / "token"

    @property
    def spool_dir(self) -> Path:
        """Local folder for uploads in flight; emptied when the server starts."""
        return self.home / "spool"

    @property
    def model_cache_dir(self) -> Path:
        """Local copies of deployed artifacts, keyed by checksum."""
        return self.home / "cache" / "models"

    @property
    def job_log_dir(self) -> Path:
        """Where attempts' logs are written while they run (then archived to the store)."""
        return self.home / "logs"

    @property
    def system_log_dir(self) -> Path:
        """Where the structured system log's daily JSON-lines files are written."""
        return self.home / "logs" / "system"

    @property
    def scratch_root(self) -> Path:
        """Parent of each attempt's scratch folder (deleted when the attempt ends)."""
        return self.home / "scratch"

    @property
    def resolved_public_url(self) -> str:
        """The URL a job's runtime uses to reach this server."""
        if self.public_url:
            return self.public_url.rstrip("/")
        host = "127.0.0.1" if self.host in ("0.0.0.0", "::", "") else self.host
        if ":" in host:
            host = f"[{host}]"
        return f"http://{host}:{self.port}"

    @property
    def listens_on_loopback(self) -> bool:
        """True when the server cannot be reached from another machine."""
        return _is_loopback(self.host)


class ClientSettings(BaseSettings):
    """SDK and CLI configuration: where the server is and which token to send."""

    model_config = SettingsConfigDict(env_prefix="AIMASS_", extra="ignore")

    url: str = "http://127.0.0.1:8080"
    token: str | None = None
    project: str = "default"
    home: Path = Field(default_factory=lambda: Path.home() / ".aimass")

    def resolved_token(self) -> str | None:
        """The token from ``AIMASS_TOKEN``, else the one the local server saved."""
        if self.token:
            return self.token
        path = self.home.expanduser() / "token"
        if path.is_file():
            return path.read_text().strip() or None
        return None


def settings_env(settings: Settings) -> dict[str, str]:
    """``AIMASS_*`` variables that rebuild ``settings`` in a child process."""
    env = {
        "AIMASS_HOME": str(settings.home),
        "AIMASS_HOST": settings.host,
        "AIMASS_PORT": str(settings.port),
        "AIMASS_WORKERS": str(settings.workers),
        "AIMASS_MAX_UPLOAD_BYTES": str(settings.max_upload_bytes),
        "AIMASS_AUTH": "true" if settings.auth else "false",
        "AIMASS_MAX_INFERENCE_BYTES": str(settings.max_inference_bytes),
        "AIMASS_MAX_TENSOR_ELEMENTS": str(settings.max_tensor_elements),
        "AIMASS_LLM_MAX_TOKENS": str(settings.llm_max_tokens),
        "AIMASS_LLM_MAX_STREAMS": str(settings.llm_max_streams),
        "AIMASS_LLM_TIMEOUT_S": str(settings.llm_timeout_s),
        "AIMASS_DATASET_MAX_ROWS": str(settings.dataset_max_rows),
        "AIMASS_DATASET_MAX_CELLS": str(settings.dataset_max_cells),
        "AIMASS_DATASET_MAX_BYTES": str(settings.dataset_max_bytes),
        "AIMASS_RECONCILE_INTERVAL": str(settings.reconcile_interval),
        "AIMASS_TUNE_GC": "true" if settings.tune_gc else "false",
        "AIMASS_ONNX_SHARED_WEIGHTS": "true" if settings.onnx_shared_weights else "false",
        "AIMASS_RUNNER_OWN_CORES": "true" if settings.runner_own_cores else "false",
        **({"AIMASS_GPUS": settings.gpus} if settings.gpus is not None else {}),
        "AIMASS_JOBS": "true" if settings.jobs else "false",
        "AIMASS_JOB_EXECUTOR": settings.job_executor,
        "AIMASS_JOB_LEASE_S": str(settings.job_lease_s),
        "AIMASS_LEADER_LEASE_S": str(settings.leader_lease_s),
        "AIMASS_PG_NOTIFY": "true" if settings.pg_notify else "false",
        "AIMASS_RAY_HEAD_LOST_S": str(settings.ray_head_lost_s),
        "AIMASS_JOB_SANDBOX": settings.job_sandbox,
        "AIMASS_ALLOWED_HOSTS": settings.allowed_hosts,
        "AIMASS_HEADER_TIMEOUT_S": str(settings.header_timeout_s),
        "AIMASS_BODY_TIMEOUT_S": str(settings.body_timeout_s),
        "AIMASS_MAX_CONNECTIONS": str(settings.max_connections),
        "AIMASS_MAX_INFLIGHT": str(settings.max_inflight),
        "AIMASS_MAX_QUEUE_WAIT_S": str(settings.max_queue_wait_s),
        "AIMASS_PROBE_STALL_S": str(settings.probe_stall_s),
        "AIMASS_AUTH_GRACE_S": str(settings.auth_grace_s),
        "AIMASS_MAX_JOB_FILE_BYTES": str(settings.max_job_file_bytes),
        "AIMASS_PREDICTION_LOG_SAMPLE": str(settings.prediction_log_sample),
        "AIMASS_PREDICTION_LOG_RATES": json.dumps(settings.prediction_log_rates),
        "AIMASS_PREDICTION_LOG_QUEUE": str(settings.prediction_log_queue),
        "AIMASS_PREDICTION_LOG_FLUSH_S": str(settings.prediction_log_flush_s),
        "AIMASS_DRIFT_INTERVAL_S": str(settings.drift_interval_s),
        "AIMASS_DRIFT_WINDOW_S": str(settings.drift_window_s),
        "AIMASS_DRIFT_MIN_ROWS": str(settings.drift_min_rows),
        "AIMASS_DRIFT_ALPHA": str(settings.drift_alpha),
        "AIMASS_ALERT_RULES": json.dumps(settings.alert_rules),
        "AIMASS_ALERT_WEBHOOKS": json.dumps(settings.alert_webhooks),
        "AIMASS_ALERT_ALLOW_HOSTS": settings.alert_allow_hosts,
        "AIMASS_ALERT_INTERVAL_S": str(settings.alert_interval_s),
        "AIMASS_NODE_INTERVAL_S": str(settings.node_interval_s),
        "AIMASS_NODE_RETENTION_DAYS": str(settings.node_retention_days),
        "AIMASS_SYSTEM_LOG_RETENTION_DAYS": str(settings.system_log_retention_days),
        "AIMASS_STRICT_PLUGINS": "true" if settings.strict_plugins else "false",
        "AIMASS_PLUGIN_TIMEOUT_S": str(settings.plugin_timeout_s),
        "AIMASS_RAY_NAMESPACE": settings.ray_namespace,
    }
    for key, value in (
        ("AIMASS_JOB_SLOTS", settings.job_slots),
        ("AIMASS_RAY_ADDRESS", settings.ray_address),
        ("AIMASS_PUBLIC_URL", settings.public_url),
        ("AIMASS_GRPC_PORT", settings.grpc_port),
        ("AIMASS_PROBE_PORT", settings.probe_port),
    ):
        if value is not None:
            env[key] = str(value)
    if settings.database_url:
        env["AIMASS_DATABASE_URL"] = settings.database_url
    if settings.artifacts:
        env["AIMASS_ARTIFACTS"] = settings.artifacts
    return env
