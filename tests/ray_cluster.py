"""A Ray cluster of two worker nodes on this machine (Ray's own multi-node test cluster).

A head with no CPUs (it schedules nothing) and two worker raylets with 2 logical
CPUs each, labelled ``node-a`` and ``node-b`` by a custom resource; this process
is its driver. Shared by the Ray jobs and the Ray replica tests (imported as
``ray_cluster``), with the two aimass servers they run on it: one in this
process (``ray_server``) and one ``aimass server`` process (``second_server``).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx

from aimass.config import Settings
from conftest import LiveServer, free_port, start_server, start_server_process
from jobs.conftest import job_settings

LABELS = ("node-a", "node-b")


@contextlib.contextmanager
def two_node_cluster() -> Iterator[Any]:
    """Start the cluster, ``ray.init`` on it, and shut both down at the end."""
    import ray
    from ray._common.utils import get_ray_address_file
    from ray.cluster_utils import Cluster

    cluster = Cluster(
        initialize_head=True,
        head_node_args={"num_cpus": 0, "include_dashboard": False},
    )
    # Ray writes the head's address where a bare ray.init() on this machine would join it;
    # nothing here needs that, and another Ray test running meanwhile must not join this one.
    address_file = Path(get_ray_address_file(None))
    with contextlib.suppress(OSError):
        if address_file.read_text().strip() == cluster.address:
            address_file.unlink()
    try:
        for label in LABELS:
            cluster.add_node(num_cpus=2, resources={label: 1})
        cluster.wait_for_nodes()
        ray.init(address=cluster.address, include_dashboard=False, log_to_driver=False)
        yield cluster
    finally:
        ray.shutdown()
        cluster.shutdown()


def label(node: str) -> str:
    """Which of ``LABELS`` a node's name (``ray:<id>@<address> (labels)``) carries."""
    [found] = [name for name in LABELS if f"({name})" in node]
    return found


def ray_server(settings: Settings, **changes: Any) -> Iterator[LiveServer]:
    """A server in this process whose jobs run on the cluster this process drives."""
    yield from start_server(job_settings(settings, job_executor="ray", job_slots=None, **changes))


def second_server(cluster: Any, server: LiveServer, home: Path) -> Iterator[str]:
    """A second ``aimass server`` process on ``server``'s database and artifacts, its own
    Ray driver on ``cluster``; yields its URL (``server``'s admin token works on it)."""
    settings = server.settings.model_copy(
        update={"home": home, "port": free_port(), "ray_address": cluster.address}
    )
    process = start_server_process(settings)
    try:
        yield f"http://127.0.0.1:{settings.port}"
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def client(url: str, token: str) -> httpx.Client:
    """An HTTP client to ``url`` with ``token``, patient with a loaded machine."""
    return httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=60)
