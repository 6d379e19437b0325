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
