"""Small real files the SDK and CLI tests upload: an ONNX model and a CSV dataset."""

from __future__ import annotations

from pathlib import Path


def write_onnx(path: Path, scale: float = 2.0) -> Path:
    """A tiny valid ONNX model, ``y = x * scale`` on float32 ``[-1, 2]``."""
    import onnx
    from onnx import TensorProto, helper

    factor = helper.make_tensor("scale", TensorProto.FLOAT, [1], [scale])
    node = helper.make_node("Mul", ["x", "scale"], ["y"])
    graph = helper.make_graph(
        [node],
        "scale",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 2])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, 2])],
        initializer=[factor],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    path.write_bytes(model.SerializeToString())
    return path


def write_csv(path: Path, rows: int = 50) -> Path:
    """A CSV with a numeric, a float and a text column."""
    lines = ["id,value,label"]
    lines += [f"{i},{(i % 7) * 1.5},{'ab'[i % 2]}" for i in range(rows)]
    path.write_text("\n".join(lines) + "\n")
    return path
