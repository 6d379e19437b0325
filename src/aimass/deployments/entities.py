"""Re-exports :mod:`aimass.entities.deployments` (kept below the store)."""

from __future__ import annotations

from aimass.entities.deployments import (
    Autoscaling,
    Batching,
    Combiner,
    Deployment,
    DeploymentCreate,
    DeploymentState,
    DeploymentUpdate,
    DesiredDeployment,
    MetaModel,
    PlacementState,
    ReplicaPlacement,
    ReplicaState,
    ReplicaStatus,
    ResolvedVersion,
    Resources,
    TrafficRoute,
    check_autoscaling,
)

__all__ = [
    "Autoscaling",
    "Batching",
    "Combiner",
    "Deployment",
    "DeploymentCreate",
    "DeploymentState",
    "DeploymentUpdate",
    "DesiredDeployment",
    "MetaModel",
    "PlacementState",
    "ReplicaPlacement",
    "ReplicaState",
    "ReplicaStatus",
    "ResolvedVersion",
    "Resources",
    "TrafficRoute",
    "check_autoscaling",
]
