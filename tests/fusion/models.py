"""Small scikit-learn models exported to ONNX for the ensemble tests (no download)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np


def to_onnx(model: Any, features: int, path: Path) -> Path:
    """``model`` as ONNX with input ``x`` (float32 ``[-1, features]``); classifiers give
    ``label`` and a plain ``probabilities`` matrix (no zipmap)."""
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import FloatTensorType

    options = {id(model): {"zipmap": False}} if hasattr(model, "predict_proba") else None
    onx = convert_sklearn(
        model,
        initial_types=[("x", FloatTensorType([None, features]))],
        options=options,
        target_opset=17,
    )
    path.write_bytes(onx.SerializeToString())
    return path


def run_onnx(path: Path) -> Any:
    """A function rows -> every output of the ONNX model at ``path`` (onnxruntime)."""
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])

    def run(x: np.ndarray) -> list[np.ndarray]:
        return [np.asarray(o) for o in session.run(None, {"x": x.astype(np.float32)})]

    return run
