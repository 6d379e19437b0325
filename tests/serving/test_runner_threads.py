"""A runner process's model uses the replica's CPU share, not every core of the node."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import httpx
import numpy as np
import pytest

import aimass
from conftest import start_server_process, worker_settings

pytestmark = [
    pytest.mark.slow,
    pytest.mark.backend("sqlite"),
    pytest.mark.skipif(shutil.which("bwrap") is None, reason="apt-get install -y bubblewrap"),
    pytest.mark.timeout(300),  # a server and two runners start on a busy machine
]
WAIT_S = 120.0


def _mlp(path: Path) -> np.ndarray:
    """Save a small two-layer ONNX MLP (8 -> 64 -> 4); return what it gives for a row of ones."""
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    w1 = rng.standard_normal((8, 64)).astype(np.float32)
    w2 = rng.standard_normal((64, 4)).astype(np.float32)
    graph = helper.make_graph(
        [
            helper.make_node("MatMul", ["input", "w1"], ["h"]),
            helper.make_node("Relu", ["h"], ["r"]),
            helper.make_node("MatMul", ["r", "w2"], ["output"]),
        ],
        "mlp",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [None, 8])],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, [None, 4])],
        [numpy_helper.from_array(w1, "w1"), numpy_helper.from_array(w2, "w2")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return np.maximum(np.ones((1, 8), np.float32) @ w1, 0) @ w2  # type: ignore[no-any-return]


def _runners(home: Path) -> dict[int, list[str]]:
    """The runner processes (the Python inside bubblewrap) serving files under ``home``."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            words = [a.decode() for a in (entry / "cmdline").read_bytes().split(b"\0")]
        except (OSError, UnicodeDecodeError):
            continue
        if (
            "bwrap" not in words[0]
            and "aimass.flavors._host" in words
            and "--listen" in words
            and any(str(home) in w for w in words)
        ):
            found[int(entry.name)] = words
    return found


def _threads_option(argv: list[str]) -> str | None:
    after = argv.index("aimass.flavors._host") + 1
    return argv[after + 1] if argv[after] == "--threads" else None


def test_a_runner_process_sizes_onnxruntime_to_its_cpu_share(tmp_path: Path) -> None:
    expected = _mlp(tmp_path / "mlp.onnx")
    settings = worker_settings(tmp_path, workers=1)
    home = settings.home
    server = start_server_process(settings, timeout_s=240)
    url = f"http://127.0.0.1:{settings.port}"
    try:
        with aimass.Client(url=url) as client:
            with httpx.Client(base_url=url, timeout=60) as http:
                uploaded = http.post(
                    "/api/v1/models/mlp/versions",
                    files={"file": ("mlp.onnx", (tmp_path / "mlp.onnx").read_bytes())},
                )
                assert uploaded.status_code == 201, uploaded.text
            for cpu in (1, 2):
                client.deployments.create(
                    "mlp", name=f"mlp-cpu{cpu}", version=1, cpu=cpu, runner="process"
                )
            for cpu in (1, 2):
                ready = client.deployments.wait_ready(f"mlp-cpu{cpu}", timeout=WAIT_S)
                assert [r.runner for r in ready.replica_status] == ["process"]
            body = {"inputs": [{"name": "input", "shape": [1, 8], "datatype": "FP32",
                                "data": [1.0] * 8}]}  # fmt: skip
            with httpx.Client(base_url=url, timeout=60) as http:
                for cpu in (1, 2):
                    answer = http.post(f"/v2/models/mlp-cpu{cpu}/infer", json=body)
                    assert answer.status_code == 200, answer.text
                    data = answer.json()["outputs"][0]["data"]
                    assert data == pytest.approx(expected[0].tolist(), rel=1e-4)
        # Both runners are alike (one model, one worker connected, nothing in flight) but
        # for onnxruntime's intra-op pool: the calling thread plus threads - 1 workers. Without
        # the limit both pools are sized by the node's cores and the counts are equal.
        runners = _runners(home)
        assert len(runners) == 2, runners
        tasks = {pid: len(os.listdir(f"/proc/{pid}/task")) for pid in runners}
        fewer, more = sorted(runners, key=tasks.__getitem__)
        assert tasks[more] - tasks[fewer] == 1, tasks
        assert [_threads_option(runners[fewer]), _threads_option(runners[more])] == ["1", "2"]
    finally:
        server.terminate()
        server.wait(timeout=60)
