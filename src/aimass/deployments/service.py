"""Deployment CRUD, alias resolution and replica status."""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from aimass.artifacts.names import validate_name
from aimass.deployments.entities import (
    Autoscaling,
    Batching,
    Combiner,
    Deployment,
    DeploymentCreate,
    DeploymentState,
    DeploymentUpdate,
    DesiredDeployment,
    ReplicaState,
    ReplicaStatus,
    ResolvedVersion,
    Resources,
    TrafficRoute,
    check_autoscaling,
)
from aimass.errors import Conflict, InvalidInput, NotFound
from aimass.registry.projects import read_project_row
from aimass.store.orm import (
    AliasRow,
    DeploymentReplicaRow,
    DeploymentRow,
    ModelRow,
    ModelVersionRow,
    ProjectRow,
    aware_utc,
    utcnow,
)

#: A replica that has not reported for this long is not counted.
REPLICA_STALE_SECONDS = 30.0


def _model_row(session: Session, project_id: int, name: str) -> ModelRow:
    row = session.scalars(
        select(ModelRow).where(ModelRow.project_id == project_id, ModelRow.name == name)
    ).first()
    if row is None:
        raise NotFound(f"model {name!r} not found")
    return row


def _route_model(session: Session, model: ModelRow, route: TrafficRoute) -> ModelRow:
    """The model a route serves: the deployment's, or the ensemble member's own."""
    if route.model is None or route.model == model.name:
        return model
    return _model_row(session, model.project_id, route.model)


def _resolve(session: Session, model: ModelRow, route: TrafficRoute) -> ModelVersionRow:
    model = _route_model(session, model, route)
    if route.version is not None:
        row = session.scalars(
            select(ModelVersionRow).where(
                ModelVersionRow.model_id == model.id, ModelVersionRow.version == route.version
            )
        ).first()
        if row is None:
            raise NotFound(f"model {model.name!r} has no version {route.version}")
        return row
    alias = session.get(AliasRow, (model.id, route.alias))
    if alias is None:
        raise NotFound(f"model {model.name!r} has no alias {route.alias!r}")
    return alias.version


def _check_routes(session: Session, model: ModelRow, routes: list[TrafficRoute]) -> None:
    for route in routes:
        version = _resolve(session, model, route)
        if version.status == "archived":
            raise InvalidInput(f"version {version.version} is archived; restore it to deploy it")


def _check_combiner(
    combiner: Combiner | None, routes: list[TrafficRoute], known: Collection[str] | None
) -> None:
    if combiner is None:
        if any(r.model for r in routes):
            raise InvalidInput("a route names another 'model' only in an ensemble ('combiner')")
        return
    graph = ("stacking", "sequence")  # served by the ensemble runner itself
    if known is not None and combiner.strategy not in graph and combiner.strategy not in known:
        raise InvalidInput(
            f"unknown combiner strategy {combiner.strategy!r} "
            f"(known: {', '.join(sorted({*known, *graph}))})"
        )


def _state(row: DeploymentRow, now: datetime) -> tuple[DeploymentState, list[ReplicaStatus]]:
    statuses = [
        ReplicaStatus(
            replica=r.replica,
            state=r.state,
            reason=r.reason,
            versions=list(r.versions or []),
            updated_at=aware_utc(r.updated_at),
            retry_at=aware_utc(r.retry_at) if r.retry_at is not None else None,
            runner=r.runner,
            placement=r.placement,
            replicas=r.replicas,
            desired_replicas=r.desired_replicas,
            device=r.device,
        )
        for r in row.replicas
        if (now - aware_utc(r.updated_at)).total_seconds() < REPLICA_STALE_SECONDS
    ]
    states = {s.state for s in statuses}
    state: DeploymentState
    if not statuses or states == {"pending"}:
        state = "pending"  # no replica yet, or no node can hold it (each says why)
    elif "failed" in states:
        state = "failed"
    elif states == {"ready"}:
        state = "ready"
    else:
        state = "loading"
    return state, statuses


def _entity(row: DeploymentRow) -> Deployment:
    spec = row.spec
    state, statuses = _state(row, utcnow())
    return Deployment(
        id=row.id,
        project=row.project.name,
        name=row.name,
        model=row.model.name,
        routes=[TrafficRoute.model_validate(r) for r in spec["routes"]],
        replicas=int(spec.get("replicas", 1)),
        batching=Batching.model_validate(spec.get("batching", {})),
        resources=Resources.model_validate(spec.get("resources", {})),
        combiner=Combiner.model_validate(spec["combiner"]) if spec.get("combiner") else None,
        autoscaling=_autoscaling(spec),
        revision=row.revision,
        state=state,
        replica_status=statuses,
        created_at=aware_utc(row.created_at),
        updated_at=aware_utc(row.updated_at),
    )


def _autoscaling(spec: dict[str, object]) -> Autoscaling | None:
    raw = spec.get("autoscaling")
    return Autoscaling.model_validate(raw) if raw else None


def _row(session: Session, project: str, name: str) -> DeploymentRow:
    row = session.scalars(
        select(DeploymentRow)
        .join(ProjectRow, DeploymentRow.project_id == ProjectRow.id)
        .where(ProjectRow.name == project, DeploymentRow.name == name)
    ).first()
    if row is None:
        raise NotFound(f"deployment {name!r} not found in project {project!r}")
    return row


def create_deployment(
    session: Session,
    project: str,
    spec: DeploymentCreate,
    combiners: Collection[str] | None = None,
) -> Deployment:
    """Record a deployment; every server process loads it within about a second.

    ``combiners``: the fusion strategies an ensemble may name (None: not checked).
    """
    name = validate_name(spec.name or spec.model, "deployment name")
    project_row = read_project_row(session, project)
    model = _model_row(session, project_row.id, spec.model)
    routes = spec.routes()
    _check_combiner(spec.combiner, routes, combiners)
    _check_routes(session, model, routes)
    row = DeploymentRow(
        project_id=project_row.id,
        name=name,
        model_id=model.id,
        spec={
            "routes": [r.model_dump(exclude_none=True) for r in routes],
            "replicas": spec.replicas,
            "batching": spec.batching.model_dump(),
            "resources": spec.resources.model_dump(),
            **({"combiner": spec.combiner.model_dump()} if spec.combiner else {}),
            **({"autoscaling": spec.autoscaling.model_dump()} if spec.autoscaling else {}),
        },
        revision=1,
    )
    row.project = project_row
    row.model = model
    session.add(row)
    try:
        session.flush()
    except IntegrityError as exc:
        raise Conflict(f"deployment {name!r} already exists in project {project!r}") from exc
    return _entity(row)


def list_deployments(session: Session, project: str) -> list[Deployment]:
    """A project's deployments, by name."""
    read_project_row(session, project)
    rows = session.scalars(
        select(DeploymentRow)
        .join(ProjectRow, DeploymentRow.project_id == ProjectRow.id)
        .where(ProjectRow.name == project)
        .order_by(DeploymentRow.name)
    ).unique()
    return [_entity(r) for r in rows]


def read_deployment(session: Session, project: str, name: str) -> Deployment:
    """One deployment with its replicas' status."""
    return _entity(_row(session, project, name))


def update_deployment(
    session: Session,
    project: str,
    name: str,
    change: DeploymentUpdate,
    combiners: Collection[str] | None = None,
) -> Deployment:
    """Change targets, weights, batching, replicas, resources or the ensemble's combiner.

    Replicas swap without a restart.
    """
    row = _row(session, project, name)
    spec = dict(row.spec)
    routes = change.routes()
    combiner = change.combiner
    if combiner is None and spec.get("combiner"):
        combiner = Combiner.model_validate(spec["combiner"])
    _check_combiner(
        combiner,
        routes if routes is not None else [TrafficRoute.model_validate(r) for r in spec["routes"]],
        combiners,
    )
    if change.combiner is not None:
        spec["combiner"] = change.combiner.model_dump()
    if routes is not None:
        _check_routes(session, row.model, routes)
        spec["routes"] = [r.model_dump(exclude_none=True) for r in routes]
    if change.replicas is not None:
        spec["replicas"] = change.replicas
    if change.batching is not None:
        spec["batching"] = change.batching.model_dump()
    if change.resources is not None:
        spec["resources"] = change.resources.model_dump()
    if "autoscaling" in change.model_fields_set:  # null turns it off
        spec.pop("autoscaling", None)
        if change.autoscaling is not None:
            spec["autoscaling"] = change.autoscaling.model_dump()
    try:
        check_autoscaling(
            _autoscaling(spec),
            Resources.model_validate(spec.get("resources", {})),
            combiner,
        )
    except ValueError as exc:
        raise InvalidInput(str(exc)) from None
    row.spec = spec
    row.revision += 1
    row.updated_at = utcnow()
    session.flush()
    return _entity(row)


def delete_deployment(session: Session, project: str, name: str) -> None:
    """Remove a deployment; replicas unload it after their in-flight requests."""
    session.delete(_row(session, project, name))
    session.flush()


def desired_deployments(session: Session) -> list[DesiredDeployment]:
    """Every deployment with its routes resolved to versions now (aliases followed)."""
    desired = []
    rows = session.scalars(select(DeploymentRow).order_by(DeploymentRow.id)).unique()
    for row in rows:
        versions = []
        for raw in row.spec["routes"]:
            route = TrafficRoute.model_validate(raw)
            try:
                target = _resolve(session, row.model, route)
            except NotFound:
                continue  # an alias removed after deploying: that route serves nothing
            versions.append(
                ResolvedVersion(
                    model=route.model or row.model.name,
                    version=target.version,
                    weight=route.weight,
                    flavor=target.flavor,
                    filename=target.filename,
                    artifact_key=target.artifact_key,
                    sha256=target.sha256,
                    trusted=target.trusted,
                    signature=target.signature,
                )
            )
        desired.append(
            DesiredDeployment(
                id=row.id,
                project=row.project.name,
                name=row.name,
                revision=row.revision,
                batching=Batching.model_validate(row.spec.get("batching", {})),
                versions=versions,
                combiner=(
                    Combiner.model_validate(row.spec["combiner"])
                    if row.spec.get("combiner")
                    else None
                ),
                resources=Resources.model_validate(row.spec.get("resources", {})),
                replicas=int(row.spec.get("replicas", 1)),
                autoscaling=_autoscaling(row.spec),
            )
        )
    return desired


def report_replica(
    session: Session,
    deployment_id: int,
    replica: str,
    state: ReplicaState,
    reason: str | None,
    versions: list[int],
    retry_at: datetime | None = None,
    runner: str | None = None,
    placement: list[dict[str, object]] | None = None,
    scale: tuple[int, int] | None = None,
    device: str | None = None,
) -> None:
    """Record one replica's state for a deployment (ignored if it was deleted meanwhile).

    ``retry_at``: when a replica that failed tries again (None: a final failure);
    ``runner``: where it runs the model, once loaded; ``placement``: its Ray actors.
    ``scale``: with autoscaling, the runner processes it sends requests to and the count
    its node wants; ``device``: where its model runs (``cpu``, ``cuda (GPU 0)``).
    """
    if session.get(DeploymentRow, deployment_id) is None:
        return
    row = session.get(DeploymentReplicaRow, (deployment_id, replica))
    if row is None:
        row = DeploymentReplicaRow(deployment_id=deployment_id, replica=replica)
        session.add(row)
    row.state = state
    row.reason = reason
    row.versions = versions
    row.retry_at = retry_at if state == "failed" else None
    row.runner = runner
    row.placement = placement
    row.replicas, row.desired_replicas = scale if scale is not None else (None, None)
    row.device = device
    row.updated_at = utcnow()
    session.flush()
