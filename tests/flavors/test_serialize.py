"""serialize_model: in-memory models to safe files the flavors read back."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from aimass.errors import InvalidInput
from aimass.flavors.registry import FlavorRegistry, inspect_upload
from aimass.flavors.serialize import serialize_model


def test_sklearn_pipeline_is_written_as_skops(
    registry: FlavorRegistry, tmp_path: Path, logreg: Any
) -> None:
    path, flavor = serialize_model(logreg, tmp_path / "out")

    assert (path, flavor) == (tmp_path / "out" / "model.skops", "sklearn")
    assert registry.detect(path, path.name).name == "sklearn"


def test_onnx_model_proto_is_written_as_onnx(
    registry: FlavorRegistry, tmp_path: Path, logreg: Any
) -> None:
    from skl2onnx import to_onnx

    proto = to_onnx(logreg, np.zeros((1, 30), dtype=np.float32))

    path, flavor = serialize_model(proto, tmp_path)

    assert (path.name, flavor) == ("model.onnx", "onnx")
    assert inspect_upload(registry, path, "anything.bin", None, trusted=False)[0] == "onnx"


@pytest.mark.parametrize("obj", [object(), {"weights": [1, 2]}, "model", np.zeros(3)])
def test_unsupported_objects_are_invalid_input_naming_what_is_supported(
    tmp_path: Path, obj: object
) -> None:
    with pytest.raises(InvalidInput, match="scikit-learn estimators") as caught:
        serialize_model(obj, tmp_path)

    assert "onnx.ModelProto" in caught.value.message
    assert not list(tmp_path.iterdir())
