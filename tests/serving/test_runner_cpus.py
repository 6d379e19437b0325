"""With ``runner_own_cores``, a runner process runs on cores of its own when the server is
confined to some of the node's."""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from aimass.flavors.cpus import node_cores, parse_cpu_list, runner_cores
from aimass.flavors.sandboxed import runner_folder, shared_runner, start_host
from tests_support import tiny_torchscript

needs_bwrap = pytest.mark.skipif(
    shutil.which("bwrap") is None, reason="apt-get install -y bubblewrap"
)


def test_kernel_cpu_lists_are_read_as_cores() -> None:
    assert parse_cpu_list("0-3,8,10-11\n") == {0, 1, 2, 3, 8, 10, 11}
    assert parse_cpu_list("5") == {5}


def test_a_runner_takes_its_cpu_share_of_the_spare_cores_and_runners_spread() -> None:
    spare = [2, 3, 4, 5, 6, 7]
    assert runner_cores(2, "a", []) is None  # nothing spare: the inherited affinity stays
    assert runner_cores(8, "a", [3, 5]) == [3, 5]  # fewer spare than asked: all of them
    picks = {tuple(runner_cores(1, f"key-{i}", spare) or ()) for i in range(40)}
    assert all(len(p) == 1 and p[0] in spare for p in picks)
    assert len(picks) > 1  # different deployments do not all land on one core
    two = runner_cores(2, "b", spare)
    assert two is not None and len(set(two)) == 2 and set(two) <= set(spare)


@pytest.fixture
def model(tmp_path: Path) -> Path:
    return tiny_torchscript(tmp_path / "tiny.pt")


@pytest.fixture
def confined() -> Iterator[set[int]]:
    """This thread (the 'server', and what it spawns) confined to one core of the node."""
    before = os.sched_getaffinity(0)
    cores = sorted(node_cores() & before)
    if len(cores) < 2:
        pytest.skip("needs a node with two cores")
    os.sched_setaffinity(0, {cores[0]})
    try:
        yield {cores[0]}
    finally:
        os.sched_setaffinity(0, before)


@needs_bwrap
def test_a_runner_of_a_confined_server_runs_on_a_core_the_server_does_not_use(
    model: Path, confined: set[int]
) -> None:
    with shared_runner(runner_folder(), f"test-{uuid.uuid4().hex}", threads=1, own_cores=True):
        predictor = start_host("torchscript", model, False)
    try:
        cpus = set(predictor.host.facts["cpus"])  # what the runner's own affinity says
        assert len(cpus) == 1
        assert not cpus & confined
        assert cpus <= node_cores()
        assert predictor.predict(np.ones((2, 3), np.float32)).shape == (2, 2)
    finally:
        predictor.close()


@needs_bwrap
def test_a_runner_of_a_server_on_every_core_keeps_the_servers_affinity(model: Path) -> None:
    server = os.sched_getaffinity(0)
    if node_cores() - server:
        pytest.skip("this test process is itself confined")
    with shared_runner(runner_folder(), f"test-{uuid.uuid4().hex}", threads=1, own_cores=True):
        predictor = start_host("torchscript", model, False)
    try:
        assert set(predictor.host.facts["cpus"]) == server
    finally:
        predictor.close()


@needs_bwrap
def test_without_own_cores_a_runner_of_a_confined_server_runs_where_the_server_does(
    model: Path, confined: set[int]
) -> None:
    with shared_runner(runner_folder(), f"test-{uuid.uuid4().hex}", threads=1):
        predictor = start_host("torchscript", model, False)
    try:
        assert set(predictor.host.facts["cpus"]) == confined
    finally:
        predictor.close()
