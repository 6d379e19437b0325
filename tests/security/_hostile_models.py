"""Hostile model files, built at test time: each tries to read or write a file when loaded or run.

TorchScript needs the source of the classes it compiles, so they live in this
module. No ``from __future__ import annotations``: TorchScript reads the
annotations as types.
"""

import pickle
from pathlib import Path
from typing import Any

import numpy as np

from aimass.flavors.torchscript import quiet_jit


def reads_file_module(path: Path, size: int) -> Any:
    """A TorchScript module whose forward returns the bytes of ``path`` in every row."""
    import torch

    class ReadsFile(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.path = str(path)
            self.size = size

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            data = torch.from_file(self.path, shared=False, size=self.size, dtype=torch.uint8)
            return data.to(torch.float32).unsqueeze(0).expand(x.size(0), self.size)

    with quiet_jit():
        return torch.jit.script(ReadsFile())


def writes_on_load_module(canary: Path) -> Any:
    """A TorchScript module whose ``__setstate__`` (run by torch.jit.load) creates ``canary``."""
    import torch

    class WritesOnLoad(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.weight = torch.ones(2)
            self.canary = str(canary)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x * self.weight

        @torch.jit.export
        def __getstate__(self) -> tuple[torch.Tensor, str, bool]:
            return (self.weight, self.canary, self.training)

        @torch.jit.export
        def __setstate__(self, state: tuple[torch.Tensor, str, bool]) -> None:
            self.canary = state[1]
            # shared=True maps the file read-write, creating it: a write during load.
            mapped = torch.from_file(self.canary, shared=True, size=2, dtype=torch.float32)
            self.weight = state[0] + mapped * 0
            self.training = state[2]

    with quiet_jit():
        return torch.jit.script(WritesOnLoad())


def plain_module() -> Any:
    """A small TorchScript MLP that uses pure tensor operators only."""
    import torch

    torch.manual_seed(0)
    with quiet_jit():
        return torch.jit.script(
            torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 3))
        )


class WritesPid:
    """Unpickling this writes the unpickling process's pid into ``canary``."""

    def __init__(self, canary: Path) -> None:
        self.canary = canary

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        code = (
            f"import os\nwith open({str(self.canary)!r}, 'w') as f:\n    f.write(str(os.getpid()))"
        )
        return (exec, (code,))


def writes_pid_pickle(canary: Path) -> bytes:
    """A pickle whose loading writes the loader's pid into ``canary``."""
    return pickle.dumps(WritesPid(canary), protocol=4)


def onnx_with_external_data(location: str) -> bytes:
    """An ONNX model (y = x + w) whose initializer w keeps its data in the file ``location``."""
    import onnx
    from onnx import TensorProto, helper

    weight = TensorProto(name="w", data_type=TensorProto.FLOAT, dims=[1, 4])
    weight.data_location = TensorProto.EXTERNAL
    for key, value in (("location", location), ("offset", "0"), ("length", "16")):
        entry = weight.external_data.add()
        entry.key, entry.value = key, value
    graph = helper.make_graph(
        [helper.make_node("Add", ["x", "w"], ["y"])],
        "external",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, 4])],
        [weight],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    return bytes(onnx.ModelProto.SerializeToString(model))


def onnx_with_custom_domain(domain: str) -> bytes:
    """An ONNX model with one node of a custom operator domain."""
    import onnx
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("ReadFile", ["x"], ["y"], domain=domain)],
        "custom",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, 4])],
    )
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid(domain, 1)],
    )
    return bytes(onnx.ModelProto.SerializeToString(model))


def rows(n: int) -> "np.ndarray[Any, Any]":
    """n rows of 4 float32 features."""
    return np.arange(n * 4, dtype=np.float32).reshape(n, 4)


def jit_load(path: Path) -> Any:
    """torch.jit.load here, in the test process (running whatever the archive runs on load)."""
    import torch

    with quiet_jit():
        return torch.jit.load(str(path))
