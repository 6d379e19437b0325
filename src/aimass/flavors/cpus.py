"""Which cores a runner process runs on: its own, away from the serving workers, when spare.

Used only with ``AIMASS_RUNNER_OWN_CORES=true`` (``Settings.runner_own_cores``; off by
default: on a machine whose other cores are busy it served less, see
``benchmarks/serving/RUNNERS.md``). A runner process computes one model for every
worker of its node, so it competes with them for CPU when it shares their cores. When
the server is confined to some of the node's cores (``taskset -c 0 aimass server``, a
cpuset, a container's ``--cpuset-cpus`` narrower than the node), the cores it may not
use are spare for the runners: a runner for a deployment whose ``resources.cpu`` is N
then runs on N of them (all of them if fewer), chosen by the runner's key so that the
runners of several deployments spread over the spare cores. When the server may use
every core, nothing is spare and the runner keeps the server's affinity: the kernel
schedules it like any other process.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

_ONLINE = Path("/sys/devices/system/cpu/online")
_CGROUP_CPUS = Path("/sys/fs/cgroup/cpuset.cpus.effective")


def parse_cpu_list(text: str) -> set[int]:
    """The cores of a kernel CPU list such as ``0-3,8,10-11``."""
    cores: set[int] = set()
    for part in text.strip().split(","):
        if not part:
            continue
        low, _, high = part.partition("-")
        cores.update(range(int(low), int(high or low) + 1))
    return cores


def _read_list(path: Path) -> set[int] | None:
    try:
        return parse_cpu_list(path.read_text())
    except (OSError, ValueError):
        return None


def node_cores() -> set[int]:
    """The cores this node lets its processes use: online, and in this cgroup's cpuset."""
    online = _read_list(_ONLINE) or set(range(os.cpu_count() or 1))
    allowed = _read_list(_CGROUP_CPUS)
    return online & allowed if allowed else online


def spare_cores() -> list[int]:
    """The node's cores outside this process's affinity (those of the serving workers)."""
    return sorted(node_cores() - os.sched_getaffinity(0))


def runner_cores(threads: int, key: str, spare: list[int]) -> list[int] | None:
    """The ``threads`` cores (all of ``spare`` if fewer) a runner for ``key`` runs on.

    None when nothing is spare: the runner keeps the affinity it inherits. Consecutive
    spare cores from a start chosen by ``key``, so different runners spread out.
    """
    if not spare:
        return None
    start = int(hashlib.sha256(key.encode()).hexdigest(), 16) % len(spare)
    return sorted(spare[(start + i) % len(spare)] for i in range(min(max(threads, 1), len(spare))))


def cpus_argv(cores: list[int] | None) -> list[str]:
    """The model host's ``--cpus`` option for ``cores`` (none when ``cores`` is None)."""
    return [] if cores is None else ["--cpus", ",".join(map(str, cores))]


def pin(cores: set[int]) -> bool:
    """Run this process (its threads made from now on) on ``cores``; False if refused."""
    try:
        os.sched_setaffinity(0, cores)
    except OSError:
        return False
    return True
