"""A model host sized for a replica's CPU share runs its model's pools with that many threads."""

from __future__ import annotations

import shutil
import uuid
from pathlib import Path

import numpy as np
import pytest

from aimass.flavors.base import replica_threads
from aimass.flavors.sandboxed import ModelHost, runner_folder, shared_runner, start_host
from tests_support import tiny_torchscript

pytestmark = pytest.mark.skipif(
    shutil.which("bwrap") is None, reason="apt-get install -y bubblewrap"
)


def test_a_cpu_share_rounds_up_to_whole_threads_and_at_least_one() -> None:
    assert [replica_threads(c) for c in (0.25, 1, 1.5, 2, 3.01)] == [1, 1, 2, 2, 4]


def test_a_torchscript_host_with_one_thread_sets_torchs_pool_to_one(tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    if torch.get_num_threads() < 2:
        pytest.skip("torch's default here is already one thread")
    path = tiny_torchscript(tmp_path / "tiny.pt")
    limited = ModelHost("torchscript", path, False, threads=1)
    default = ModelHost("torchscript", path, False)
    try:
        # What torch.get_num_threads() says inside each host, after the model loaded.
        assert limited.start()["threads"] == 1
        assert default.start()["threads"] == torch.get_num_threads()
    finally:
        limited.close()
        default.close()


def test_a_runner_process_opens_its_onnx_session_with_the_replicas_threads(
    tmp_path: Path,
) -> None:
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper, numpy_helper

    weights = np.arange(12, dtype=np.float32).reshape(4, 3)
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["y"])],
        "matmul",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, 3])],
        [numpy_helper.from_array(weights, "w")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    path = tmp_path / "matmul.onnx"
    onnx.save(model, str(path))
    with shared_runner(runner_folder(), f"test-{uuid.uuid4().hex}", threads=1):
        predictor = start_host("onnx", path, False)
    try:
        # onnxruntime's intra-op setting, read back from the runner's session.
        assert predictor.host.facts["threads"] == 1
        x = np.ones((2, 4), dtype=np.float32)
        np.testing.assert_allclose(predictor.predict(x), x @ weights)
    finally:
        predictor.close()
