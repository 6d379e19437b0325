"""Cached ONNX models are served with their weights memory-mapped from one file per node."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from aimass.flavors._onnx_mapped import DATA, MODEL, mapped_folder
from aimass.flavors.onnx import OnnxFlavor


def mlp(path: Path, hidden: int = 256, seed: int = 0) -> Path:
    """An MLP (8 -> hidden -> hidden -> 3) whose weights are large enough to be mapped."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(seed)
    w0 = rng.standard_normal((8, hidden), dtype=np.float32)
    w1 = rng.standard_normal((hidden, hidden), dtype=np.float32) / np.float32(np.sqrt(hidden))
    w2 = rng.standard_normal((hidden, 3), dtype=np.float32)
    graph = helper.make_graph(
        [
            helper.make_node("MatMul", ["x", "w0"], ["h"]),
            helper.make_node("Relu", ["h"], ["r"]),
            helper.make_node("MatMul", ["r", "w1"], ["h1"]),
            helper.make_node("Relu", ["h1"], ["r1"]),
            helper.make_node("MatMul", ["r1", "w2"], ["y"]),
        ],
        "mlp",
        inputs=[helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 8])],
        outputs=[helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 3])],
        initializer=[numpy_helper.from_array(w, f"w{i}") for i, w in enumerate((w0, w1, w2))],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save_model(model, path)
    return path


def mapped_files() -> set[str]:
    """The files this process has memory-mapped."""
    return {
        line.split(maxsplit=5)[5].strip()
        for line in Path("/proc/self/maps").read_text().splitlines()
        if len(line.split(maxsplit=5)) == 6
    }


def test_a_cached_model_answers_as_its_file_with_weights_mapped_from_a_form_written_once(
    tmp_path: Path,
) -> None:
    path = mlp(tmp_path / "mlp.onnx")
    x = np.random.default_rng(1).standard_normal((5, 8)).astype(np.float32)
    expected = OnnxFlavor().load(path, trusted=False).predict(x)

    first: Any = OnnxFlavor().load_cached(path, trusted=False)
    folder = mapped_folder(path)
    written = {name: (folder / name).stat().st_mtime_ns for name in (MODEL, DATA)}
    second: Any = OnnxFlavor().load_cached(path, trusted=False)

    np.testing.assert_allclose(first.predict(x), expected, rtol=1e-5)
    np.testing.assert_allclose(second.predict(x), expected, rtol=1e-5)
    assert first.signature == OnnxFlavor().inspect(path, trusted=False)
    # The second load maps the form the first wrote; nothing is left half-written.
    assert {name: (folder / name).stat().st_mtime_ns for name in (MODEL, DATA)} == written
    assert str((folder / DATA).resolve()) in mapped_files()
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".part")]


def test_a_model_with_nothing_to_map_is_served_from_its_own_file(tmp_path: Path) -> None:
    path = mlp(tmp_path / "tiny.onnx", hidden=4)  # weights under 1 kB stay inline

    predictor = OnnxFlavor().load_cached(path, trusted=False)

    x = np.ones((2, 8), dtype=np.float32)
    np.testing.assert_allclose(
        predictor.predict(x), OnnxFlavor().load(path, trusted=False).predict(x), rtol=1e-6
    )
    assert not mapped_folder(path).exists()
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".part")]


def test_a_converted_sklearn_classifier_keeps_its_labels(tmp_path: Path) -> None:
    import warnings

    from skl2onnx import to_onnx
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.neural_network import MLPClassifier

    x = np.random.default_rng(3).standard_normal((200, 30)).astype(np.float32)
    classifier = MLPClassifier(hidden_layer_sizes=(64,), max_iter=20, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)  # the labels only need to vary
        classifier.fit(x, x[:, 0] > 0)
    path = tmp_path / "mlp.onnx"
    path.write_bytes(to_onnx(classifier, x[:1]).SerializeToString())  # ai.onnx.ml, ZipMap

    plain = OnnxFlavor().load(path, trusted=False)
    mapped = OnnxFlavor().load_cached(path, trusted=False)

    assert (mapped_folder(path) / DATA).is_file()
    np.testing.assert_array_equal(mapped.predict(x), plain.predict(x))
    assert len(set(mapped.predict(x).tolist())) == 2
