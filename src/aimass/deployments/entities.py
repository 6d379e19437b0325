"""Re-exports :mod:`aimass.entities.deployments` (kept below the store)."""

from __future__ import annotations

from aimass.entities.deployments import (
    Batching,
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
)

__all__ = [
    "Batching",
    "Deployment",
    "DeploymentCreate",
    "DeploymentState",
    "DeploymentUpdate",
    "DesiredDeployment",
    "ReplicaState",
    "ReplicaStatus",
    "ResolvedVersion",
    "Resources",
    "TrafficRoute",
]
