"""Re-exports :mod:`aimass.entities.deployments` (kept below the store)."""

from __future__ import annotations

from aimass.entities.deployments import (
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
)

__all__ = [
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
]
