"""Which of a node's GPUs each deployment's model gets: never more than the node has.

Every server worker on a node computes the same placement from the same desired
deployments, with no state of its own: the oldest deployment (lowest id) chooses
first and takes the lowest free GPUs it asks for; one that does not fit gets the
reason why (and stays ``pending`` until a GPU is free). Deployments on Ray actors
(``runner: "ray"``) are left to Ray, which places GPUs across the cluster.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from aimass.deployments.entities import DesiredDeployment


@dataclass(frozen=True, slots=True)
class GpuNeed:
    """A deployment that asks for GPUs on this node."""

    deployment_id: int
    project: str
    name: str
    gpus: int


def _plural(count: int) -> str:
    return f"{count} GPU{'s' if count != 1 else ''}"


def place_gpus(needs: Sequence[GpuNeed], gpus: Sequence[str]) -> dict[int, tuple[str, ...] | str]:
    """For each need, its GPUs (node indices) or the reason it gets none."""
    free = list(gpus)
    holders: list[GpuNeed] = []
    placed: dict[int, tuple[str, ...] | str] = {}
    for need in sorted(needs, key=lambda n: n.deployment_id):
        if need.gpus > len(gpus):
            placed[need.deployment_id] = (
                f"needs {_plural(need.gpus)}; this node has {len(gpus) or 'none'}"
            )
        elif need.gpus > len(free):
            names = ", ".join(
                repr(h.name if h.project == need.project else f"{h.project}/{h.name}")
                for h in holders
            )
            placed[need.deployment_id] = (
                f"needs {_plural(need.gpus)}; this node has {len(gpus)}, {len(free)} free "
                f"(the others held by {names}); it loads once enough are given back"
            )
        else:
            placed[need.deployment_id] = tuple(free[: need.gpus])
            del free[: need.gpus]
            holders.append(need)
    return placed


def gpu_need(item: DesiredDeployment) -> GpuNeed | None:
    """What a deployment asks of this node's GPUs (each autoscaled replica its own), or
    None: no GPU, or Ray places it."""
    if not item.resources.gpu or item.resources.runner == "ray":
        return None
    replicas = item.autoscaling.max_replicas if item.autoscaling is not None else 1
    return GpuNeed(item.id, item.project, item.name, item.resources.gpu * replicas)


def device_status(predictors: Sequence[object], gpus: Sequence[str]) -> str | None:
    """Where a deployment's (first) model runs, for its status: ``cpu``, ``cuda (GPU 2)``,
    or ``cpu`` with why when it was given GPUs its library cannot see; None on Ray actors
    (Ray gives them GPUs; each actor's placement says where it runs)."""
    from aimass.serving.ray_replicas import RayReplicas

    if not predictors or isinstance(predictors[0], RayReplicas):
        return None
    device = str(getattr(predictors[0], "device", "cpu"))
    if not gpus:
        return device
    given = ", ".join(gpus)
    if device.startswith("cuda"):
        return f"cuda (GPU {given})"
    return f"cpu (given GPU {given}, but its library sees no CUDA device)"
