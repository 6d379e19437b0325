"""A node's GPUs are given to deployments without over-committing, and a runner process
sees only the GPUs its model was given (this machine has none: AIMASS_GPUS declares one)."""

from __future__ import annotations

import shutil
import time
import uuid
from pathlib import Path

import numpy as np
import pytest
from pydantic import ValidationError
from tests.conftest import ModelFiles

from aimass import Client
from aimass.config import Settings
from aimass.devices import assigned_gpus, child_visible_devices, detect_gpus, torch_device
from aimass.entities.deployments import Deployment
from aimass.flavors.sandboxed import runner_folder, shared_runner, start_host
from aimass.serving.gpu_placement import GpuNeed, place_gpus
from tests_support import tiny_torchscript

needs_bwrap = pytest.mark.skipif(
    shutil.which("bwrap") is None, reason="apt-get install -y bubblewrap"
)


def test_the_oldest_deployment_chooses_first_and_none_over_commits() -> None:
    needs = [GpuNeed(7, "default", "late", 1), GpuNeed(3, "default", "early", 2)]
    placed = place_gpus(needs, ["0", "1", "2"])
    assert placed[3] == ("0", "1") and placed[7] == ("2",)
    placed = place_gpus([*needs, GpuNeed(9, "other", "last", 1)], ["0", "1", "2"])
    assert placed[9] == (
        "needs 1 GPU; this node has 3, 0 free (the others held by 'default/early', "
        "'default/late'); it loads once enough are given back"
    )
    # Asking more than the node has: it says so; it holds nothing meanwhile.
    placed = place_gpus([GpuNeed(1, "p", "huge", 4), GpuNeed(2, "p", "small", 1)], ["0"])
    assert placed == {1: "needs 4 GPUs; this node has 1", 2: ("0",)}
    assert place_gpus([GpuNeed(1, "p", "a", 1)], []) == {1: "needs 1 GPU; this node has none"}


def test_a_process_given_some_gpus_numbers_them_from_0_and_its_children_get_the_same_ones(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3,5")  # as Ray or a scheduler starts a server
    assert detect_gpus() == ["0", "1"]
    assert child_visible_devices(["1"]) == "5" and child_visible_devices([]) == ""
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES")
    assert child_visible_devices(["1"]) == "1"


def test_a_node_declares_its_gpus_with_the_gpus_setting() -> None:
    assert detect_gpus("0, 1") == ["0", "1"]
    assert detect_gpus("none") == detect_gpus("") == []
    assert Settings(gpus="2").gpus == "2"  # AIMASS_GPUS
    assert Settings(gpus="0, 1,").gpus == "0, 1," and Settings(gpus="None").gpus == "None"
    with pytest.raises(ValidationError, match="gpus"):
        Settings(gpus="the big one")  # said at start-up, not served as a GPU named so
    import torch

    assert torch_device(torch) == "cpu"  # nothing given
    with assigned_gpus(["0"]):  # given, but this torch sees no CUDA device
        assert torch_device(torch) == ("cuda:0" if torch.cuda.is_available() else "cpu")


@needs_bwrap
def test_a_runner_process_sees_only_the_gpus_its_model_was_given(tmp_path: Path) -> None:
    model = tiny_torchscript(tmp_path / "tiny.pt")
    seen = {}
    for gpus in (("1",), ()):
        key = f"test-{uuid.uuid4().hex}"
        with assigned_gpus(gpus), shared_runner(runner_folder(), key, threads=1):
            predictor = start_host("torchscript", model, False)
        try:
            seen[gpus] = predictor.host.facts["visible_gpus"]
            assert predictor.device == "cpu"  # torch here has no CUDA
            assert predictor.predict(np.ones((2, 3), np.float32)).shape == (2, 2)
        finally:
            predictor.close()
    assert seen == {("1",): "1", (): ""}  # given none: it sees none, not the node's all


def _settled(client: Client, name: str, timeout: float = 60) -> Deployment:
    deadline = time.monotonic() + timeout
    while True:
        found = client.deployments.get(name)
        if found.replica_status and found.state in ("ready", "pending", "failed"):
            return found
        assert time.monotonic() < deadline, found
        time.sleep(0.1)


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """The node declares one GPU (``AIMASS_GPUS=0``); this machine has none."""
    return settings.model_copy(update={"gpus": "0"})


@needs_bwrap
def test_a_node_with_one_gpu_serves_one_gpu_deployment_and_the_next_waits_for_it(
    client: Client, model_files: ModelFiles
) -> None:
    client.models.upload("cancer", model_files.onnx)
    client.deployments.create("cancer", name="first", version=1, gpu=1)
    client.deployments.wait_ready("first", timeout=60)
    first = client.deployments.get("first")
    assert [s.device for s in first.replica_status] == [
        "cpu (given GPU 0, but its library sees no CUDA device)"
    ]
    # On its GPU once per node: in the node's runner process, not in every worker.
    assert [s.runner for s in first.replica_status] == ["process"]
    client.deployments.create("cancer", name="second", version=1, gpu=1)
    client.deployments.create("cancer", name="on-cpu", version=1)
    second = _settled(client, "second")
    assert second.state == "pending"
    assert [s.reason for s in second.replica_status] == [
        "needs 1 GPU; this node has 1, 0 free (the others held by 'first'); "
        "it loads once enough are given back"
    ]
    client.deployments.wait_ready("on-cpu", timeout=60)  # a CPU model needs no GPU
    assert [s.device for s in client.deployments.get("on-cpu").replica_status] == ["cpu"]

    client.deployments.delete("first")  # its GPU is given back: the waiting one gets it
    client.deployments.wait_ready("second", timeout=60)
    second = client.deployments.get("second")
    assert [s.device for s in second.replica_status] == [
        "cpu (given GPU 0, but its library sees no CUDA device)"
    ]
    rows = np.asarray(model_files.x)[:3].tolist()
    assert len(client.deployments.predict("second", rows).predictions) == 3
