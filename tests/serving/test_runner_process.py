"""Runner processes shared by workers: ``aimass server --workers 2`` holds a model once per node."""

from __future__ import annotations

import os
import shutil
import time
import warnings
from pathlib import Path

import httpx
import pytest

import aimass
from conftest import start_server_process, worker_settings
from tests_support import tiny_torchscript

pytestmark = [
    pytest.mark.slow,
    pytest.mark.backend("sqlite"),
    pytest.mark.skipif(shutil.which("bwrap") is None, reason="apt-get install -y bubblewrap"),
    pytest.mark.timeout(300),  # two workers and a runner start on a busy machine
]
WAIT_S = 120.0


def _runner_processes(model_path_part: str) -> list[int]:
    """The runner processes (the Python inside bubblewrap) serving a file under that path."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        words = [a.decode(errors="replace") for a in argv]
        if (
            len(words) > 4
            and "bwrap" not in words[0]
            and "aimass.flavors._host" in words
            and "--listen" in words
            and any(model_path_part in w for w in words)
        ):
            found.append(int(entry.name))
    return found


def test_two_workers_share_one_runner_process(tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    model_file = tiny_torchscript(tmp_path / "tiny.pt")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # newer torch deprecates TorchScript
        module = torch.jit.load(str(model_file))
    with torch.no_grad():
        expected = module(torch.ones(1, 3)).numpy().tolist()
    home = tmp_path / "home"
    settings = worker_settings(tmp_path)
    server = start_server_process(settings, timeout_s=240)
    url = f"http://127.0.0.1:{settings.port}"
    try:
        with httpx.Client(base_url=url, timeout=60) as http:
            uploaded = http.post(
                "/api/v1/models/tiny/versions",
                files={"file": ("tiny.pt", model_file.read_bytes(), "application/octet-stream")},
            )
            assert uploaded.status_code == 201, uploaded.text
        with aimass.Client(url=url) as client:
            # TorchScript runs code: "auto" puts it in the node's runner process.
            client.deployments.create("tiny", version=1)
            deadline = time.monotonic() + WAIT_S
            while True:
                replicas = client.deployments.get("tiny").replica_status
                if len(replicas) == 2 and all(r.state == "ready" for r in replicas):
                    break  # both workers loaded it: each connected to the runner
                assert time.monotonic() < deadline, f"not ready on both workers: {replicas}"
                time.sleep(0.5)
            # Where the model runs is in the deployment's status.
            assert [r.runner for r in replicas] == ["process", "process"]
            assert client.deployments.get("tiny").resources.runner == "auto"
        body = {"inputs": [{"name": "input", "shape": [1, 3], "datatype": "FP32",
                            "data": [1.0, 1.0, 1.0]}]}  # fmt: skip
        for _ in range(20):  # a new connection each: the kernel spreads them over the workers
            with httpx.Client(base_url=url, timeout=60) as http:
                answer = http.post("/v2/models/tiny/infer", json=body)
            assert answer.status_code == 200, answer.text
            logits = answer.json()["outputs"][0]["data"]
            assert logits == pytest.approx(expected[0], abs=1e-5)
        runners = _runner_processes(str(home))
        assert len(runners) == 1, f"expected one runner process for the node, found {runners}"
        sockets = [
            fd for fd in os.listdir(f"/proc/{runners[0]}/fd")
            if os.readlink(f"/proc/{runners[0]}/fd/{fd}").startswith("socket:")
        ]  # fmt: skip
        # The listening socket and one connection per worker.
        assert len(sockets) == 3, sockets
    finally:
        server.terminate()
        server.wait(timeout=60)
