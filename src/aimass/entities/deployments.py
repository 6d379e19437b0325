"""Deployment entities and the requests that create and change them."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

#: ``pending``: this node cannot hold it (it needs a GPU the node lacks); the reason says so.
ReplicaState = Literal["pending", "loading", "ready", "failed"]
DeploymentState = Literal["pending", "loading", "ready", "failed"]


class TrafficRoute(BaseModel):
    """One target of a deployment: a version number or an alias it follows, with a weight."""

    model_config = ConfigDict(extra="forbid")

    version: int | None = Field(default=None, ge=1)
    alias: str | None = None
    weight: float = Field(default=100.0, gt=0, le=1_000_000)
    #: An ensemble member of another model of the project (default: the deployment's model);
    #: left out of the JSON when unset, so plain routes read as before.
    model: str | None = Field(default=None, exclude_if=lambda v: v is None)

    @model_validator(mode="after")
    def _one_target(self) -> TrafficRoute:
        if (self.version is None) == (self.alias is None):
            raise ValueError("a route names exactly one of 'version' or 'alias'")
        return self


#: Requests a deployment's queue holds (per server process) before it answers 429: two
#: full batches at the default size, so a queued request waits about two batches' time.
DEFAULT_MAX_QUEUE = 128


class Batching(BaseModel):
    """Dynamic batching: a batch closes at ``max_batch_size`` rows or after ``max_delay_ms``.

    ``max_queue`` bounds the requests waiting for the model in each server process;
    past it a request is refused at once with 429 and ``Retry-After``, so that
    overload sheds work instead of growing every caller's latency.
    """

    model_config = ConfigDict(extra="forbid")

    max_batch_size: int = Field(default=64, ge=1, le=4096)
    max_delay_ms: float = Field(default=2.0, ge=0, le=1000)
    max_queue: int = Field(default=DEFAULT_MAX_QUEUE, ge=1, le=1_000_000)


class MetaModel(BaseModel):
    """A stacking combiner's meta-model, as data: a multinomial (or binary) logistic regression.

    It reads the members' ``predict_proba`` side by side (member 1's columns, then
    member 2's ...) and answers ``softmax(x @ coef.T + intercept)`` (a sigmoid for
    one row of ``coef``). Fitted out-of-fold by ``aimass.fusion.stacking.fit_meta_model``.
    """

    model_config = ConfigDict(extra="forbid")

    coef: list[list[float]] = Field(min_length=1, max_length=1024)
    intercept: list[float] = Field(min_length=1, max_length=1024)

    @model_validator(mode="after")
    def _shapes(self) -> MetaModel:
        if len(self.intercept) != len(self.coef):
            raise ValueError("'intercept' needs one value per row of 'coef'")
        if len({len(row) for row in self.coef}) != 1:
            raise ValueError("every row of 'coef' needs the same length")
        return self


class Combiner(BaseModel):
    """Serve the routes as ONE model: every route is a member, their outputs combined.

    ``strategy``: ``mean``, ``weighted_mean`` (the routes' weights), ``hard_vote``,
    ``soft_vote`` (weighted mean of ``predict_proba``, then argmax), ``stacking``
    (``meta`` over the members' ``predict_proba``), ``sequence`` (each member's
    ``predict`` is the next one's input: preprocess -> model), or a plugin's strategy.
    """

    model_config = ConfigDict(extra="forbid")

    strategy: str = Field(min_length=1, max_length=128)
    meta: MetaModel | None = None

    @model_validator(mode="after")
    def _meta_for_stacking(self) -> Combiner:
        if (self.strategy == "stacking") != (self.meta is not None):
            raise ValueError("'meta' is given with strategy 'stacking', and only with it")
        return self


#: Where a deployment's model runs (``Resources.runner``).
RunnerMode = Literal["auto", "process", "in_process", "ray"]
#: Where a replica did put it (``ReplicaStatus.runner``).
EffectiveRunner = Literal["process", "worker_process", "in_process", "ray"]


class Resources(BaseModel):
    """What one replica needs."""

    model_config = ConfigDict(extra="forbid")

    cpu: float = Field(default=1.0, gt=0, le=1024)
    gpu: int = Field(default=0, ge=0, le=64)
    memory_mb: int | None = Field(default=None, ge=1)
    #: Where the model runs: ``process``, one runner process per node that every server
    #: worker feeds over a Unix socket (the model's memory once per node, not per worker);
    #: ``in_process``, in each worker (code-bearing formats still in a sandboxed process of
    #: each worker's own); ``auto``, process for code-bearing formats (pickle, TorchScript,
    #: untrusted skops types) and for a GPU deployment whose format a runner process serves,
    #: in-process for the others; ``ray``, the deployment's
    #: ``replicas`` as Ray actors placed by Ray across the cluster (servers on ``--executor
    #: ray`` only), each asking Ray for this ``cpu``, ``gpu`` and ``memory_mb``.
    runner: RunnerMode = "auto"


class Autoscaling(BaseModel):
    """Replicas between ``min_replicas`` and ``max_replicas``, on ongoing requests per replica.

    The names are Ray Serve's ``autoscaling_config``: the desired count is the ongoing
    requests (queued or running, summed over the node's workers), averaged over
    ``look_back_period_s``, divided by ``target_ongoing_requests`` and clamped. It grows
    once that has asked for more for ``upscale_delay_s``, and shrinks once it has asked
    for fewer for ``downscale_delay_s``. A replica is a runner process of the node
    (``resources.runner: "process"``): scale-up loads it before it takes traffic;
    scale-down stops sending it requests, lets it finish them, then leaves it.
    """

    model_config = ConfigDict(extra="forbid")

    min_replicas: int = Field(default=1, ge=1, le=64)
    max_replicas: int = Field(default=1, ge=1, le=64)
    target_ongoing_requests: float = Field(default=2.0, gt=0, le=100_000)
    upscale_delay_s: float = Field(default=30.0, ge=0, le=86_400)
    downscale_delay_s: float = Field(default=600.0, ge=0, le=86_400)
    look_back_period_s: float = Field(default=30.0, gt=0, le=86_400)

    @model_validator(mode="after")
    def _bounds(self) -> Autoscaling:
        if self.max_replicas < self.min_replicas:
            raise ValueError(
                f"'max_replicas' ({self.max_replicas}) is below 'min_replicas' "
                f"({self.min_replicas})"
            )
        return self


def check_autoscaling(
    autoscaling: Autoscaling | None, resources: Resources, combiner: Combiner | None
) -> None:
    """Autoscaling needs runner processes (``resources.runner: "process"``) and no ensemble."""
    if autoscaling is None:
        return
    if resources.runner != "process":
        raise ValueError(
            "'autoscaling' scales the node's runner processes: set resources.runner to 'process'"
        )
    if combiner is not None:
        raise ValueError("'autoscaling' does not apply to an ensemble ('combiner') yet")


class DeploymentCreate(BaseModel):
    """Serve a model: one version, an alias it follows, or weighted routes (canary, A/B)."""

    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(default=None, description="defaults to the model's name")
    model: str
    version: int | None = Field(default=None, ge=1)
    alias: str | None = None
    traffic: list[TrafficRoute] | None = Field(default=None, min_length=1, max_length=16)
    replicas: int = Field(default=1, ge=1, le=64)
    batching: Batching = Field(default_factory=Batching)
    resources: Resources = Field(default_factory=Resources)
    #: Serve the routes as one ensemble model instead of splitting traffic between them.
    combiner: Combiner | None = None
    #: Scale the node's runner processes between min and max replicas (None: fixed).
    autoscaling: Autoscaling | None = None

    @model_validator(mode="after")
    def _one_target(self) -> DeploymentCreate:
        given = sum(x is not None for x in (self.version, self.alias, self.traffic))
        if given != 1:
            raise ValueError("give exactly one of 'version', 'alias' or 'traffic'")
        if self.combiner is None and any(r.model for r in self.traffic or []):
            raise ValueError("a route names another 'model' only in an ensemble ('combiner')")
        check_autoscaling(self.autoscaling, self.resources, self.combiner)
        return self

    def routes(self) -> list[TrafficRoute]:
        """The targets as weighted routes."""
        if self.traffic is not None:
            return list(self.traffic)
        return [TrafficRoute(version=self.version, alias=self.alias)]


class DeploymentUpdate(BaseModel):
    """A change to a deployment; the serving side follows within about a second."""

    model_config = ConfigDict(extra="forbid")

    version: int | None = Field(default=None, ge=1)
    alias: str | None = None
    traffic: list[TrafficRoute] | None = Field(default=None, min_length=1, max_length=16)
    replicas: int | None = Field(default=None, ge=1, le=64)
    batching: Batching | None = None
    resources: Resources | None = None
    combiner: Combiner | None = None
    #: New autoscaling settings; ``{"autoscaling": null}`` turns autoscaling off.
    autoscaling: Autoscaling | None = None

    @model_validator(mode="after")
    def _at_most_one_target(self) -> DeploymentUpdate:
        if sum(x is not None for x in (self.version, self.alias, self.traffic)) > 1:
            raise ValueError("give at most one of 'version', 'alias' or 'traffic'")
        return self

    def routes(self) -> list[TrafficRoute] | None:
        """New routes, or None when the targets do not change."""
        if self.traffic is not None:
            return list(self.traffic)
        if self.version is not None or self.alias is not None:
            return [TrafficRoute(version=self.version, alias=self.alias)]
        return None


#: A Ray replica as its server last saw it: answering, restarting after a death, or not
#: placed by Ray yet.
PlacementState = Literal["alive", "restarting", "pending"]


class ReplicaPlacement(BaseModel):
    """Where one Ray actor replica of a deployment runs (``runner: "ray"``)."""

    version: int
    index: int
    state: PlacementState
    #: Its Ray node: ``ray:<id>@<address> (labels)``; None until Ray placed it.
    node: str | None = None


class ReplicaStatus(BaseModel):
    """What one server process reports about a deployment."""

    replica: str
    state: ReplicaState
    reason: str | None = None
    versions: list[int] = Field(default_factory=list)
    updated_at: datetime
    #: Set while ``failed`` for a passing reason (a file not there yet, a host that went
    #: away): the replica loads again then. None on a failure that needs someone to act
    #: (a checksum mismatch, a model that cannot load untrusted): ``wait_ready`` gives up.
    retry_at: datetime | None = None
    #: Where this replica runs the model: ``process`` (the node's runner process, shared by
    #: the server's workers), ``worker_process`` (a sandboxed process of this worker's own),
    #: ``in_process`` (in the worker). None until it has loaded.
    runner: EffectiveRunner | None = None
    #: With ``runner: "ray"``: each Ray actor replica and its node; left out otherwise.
    placement: list[ReplicaPlacement] | None = Field(default=None, exclude_if=lambda v: v is None)
    #: With autoscaling: the runner processes this replica sends requests to (loaded and
    #: taking traffic), and the count the node's autoscaler wants. None without autoscaling.
    replicas: int | None = Field(default=None, exclude_if=lambda v: v is None)
    desired_replicas: int | None = Field(default=None, exclude_if=lambda v: v is None)
    #: The device its model runs on: ``cpu``, or ``cuda (GPU 0)`` for a deployment given
    #: a GPU of the node (``resources.gpu``); None until loaded.
    device: str | None = None


class Deployment(BaseModel):
    """Desired serving state plus what the replicas report."""

    id: int
    project: str
    name: str
    model: str
    routes: list[TrafficRoute]
    replicas: int
    batching: Batching
    resources: Resources
    #: Left out of the JSON for a plain deployment.
    combiner: Combiner | None = Field(default=None, exclude_if=lambda v: v is None)
    #: Left out of the JSON without autoscaling.
    autoscaling: Autoscaling | None = Field(default=None, exclude_if=lambda v: v is None)
    revision: int
    state: DeploymentState
    replica_status: list[ReplicaStatus] = Field(default_factory=list)
    created_at: datetime
    updated_at: datetime


class ResolvedVersion(BaseModel):
    """A route resolved to a concrete version, with what loading it needs."""

    model: str
    version: int
    weight: float
    flavor: str
    filename: str
    artifact_key: str
    sha256: str
    trusted: bool
    signature: dict[str, object] | None = None


class DesiredDeployment(BaseModel):
    """What a replica must hold for one deployment, with a fingerprint to compare."""

    id: int
    project: str
    name: str
    revision: int
    batching: Batching
    versions: list[ResolvedVersion]
    combiner: Combiner | None = None
    resources: Resources = Field(default_factory=lambda: Resources())
    replicas: int = 1
    autoscaling: Autoscaling | None = None

    def fingerprint(self) -> tuple[object, ...]:
        """Equal fingerprints mean nothing to reload."""
        ray = (
            (self.replicas, self.resources.cpu, self.resources.memory_mb)
            if self.resources.runner == "ray"
            else ()
        )
        return (
            *ray,
            self.resources.gpu,
            self.resources.runner,
            self.batching.max_batch_size,
            self.batching.max_delay_ms,
            self.batching.max_queue,
            tuple((v.model, v.version, v.sha256, v.weight) for v in self.versions),
            None if self.combiner is None else self.combiner.model_dump_json(),
            # On or off changes how the versions load; the settings themselves apply live.
            self.autoscaling is not None,
        )
