"""Ray nodes as the job records name them, and Ray's word on whether one is still alive.

An attempt's Ray task first tells the driver where it landed (``placed``: Ray's
node id); the driver turns that id into the name stored on the job
(``node_name``): ``ray:<id>@<address>`` and the node's custom resources, which
are how an operator labels nodes (``ray start --resources '{"gpu-box": 1}'``).
Two nodes on one host differ by id; the address says which machine.
"""

from __future__ import annotations

import threading
from typing import Any

#: Ray's own resources; every other name on a node is a label its operator gave it.
_BUILTIN = frozenset({"CPU", "GPU", "TPU", "memory", "object_store_memory"})
_BUILTIN_PREFIXES = ("node:", "accelerator_type:", "TPU-")
_ID_CHARS = 12


def placed() -> str:
    """On the node, inside a task: the Ray node id it runs on."""
    import ray

    node_id: str = ray.get_runtime_context().get_node_id()
    return node_id


def labels(resources: dict[str, Any]) -> list[str]:
    """A node's custom resources, sorted: the labels its operator gave it."""
    return sorted(
        name
        for name in resources
        if name not in _BUILTIN and not name.startswith(_BUILTIN_PREFIXES)
    )


def describe(node_id: str, address: str | None, resources: dict[str, Any]) -> str:
    """The name a job record gives the node: ``ray:<id>@<address> (label, ...)``."""
    name = f"ray:{node_id[:_ID_CHARS]}@{address or '?'}"
    tags = labels(resources)
    return f"{name} ({', '.join(tags)})" if tags else name


class RayNodes:
    """Names of the cluster's nodes by id, read from Ray's node table once per node.

    ``ray`` is the imported Ray module (the executor imports it, with its error message).
    """

    def __init__(self, ray: Any) -> None:
        self._ray = ray
        self._names: dict[str, str] = {}
        self._lock = threading.Lock()

    def node_name(self, node_id: str) -> str:
        """The record's name for ``node_id`` (its id alone if Ray no longer lists it)."""
        with self._lock:
            known = self._names.get(node_id)
        if known is not None:
            return known
        name = describe(node_id, None, {})
        for node in self._ray.nodes():
            if node.get("NodeID") == node_id:
                name = describe(node_id, node.get("NodeManagerAddress"), node.get("Resources", {}))
                break
        with self._lock:
            self._names[node_id] = name
        return name
