"""Pickle and joblib files: refused untrusted without being unpickled, loaded when trusted."""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pytest

from aimass.errors import Unprocessable
from aimass.flavors.registry import FlavorRegistry, inspect_upload

Data = tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]


class TouchOnLoad:
    """Unpickling this creates a marker file: proof that the pickle ran."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        return (Path.touch, (self.marker,))


@pytest.mark.parametrize(
    ("filename", "flavor"),
    [
        ("model.pkl", None),
        ("model.bin", None),
        ("model.onnx", None),
        ("model.skops", None),
        ("model.pkl", "pickle"),
        ("model.onnx", "onnx"),
        ("model.pkl", "sklearn"),
        ("model.pkl", "torchscript"),
    ],
)
def test_untrusted_pickle_is_never_unpickled(
    registry: FlavorRegistry, tmp_path: Path, filename: str, flavor: str | None
) -> None:
    marker = tmp_path / "marker"
    upload = tmp_path / "upload"
    upload.write_bytes(pickle.dumps(TouchOnLoad(marker), protocol=4))

    with pytest.raises(Unprocessable):
        inspect_upload(registry, upload, filename, flavor, trusted=False)

    assert not marker.exists()


def test_a_trusted_pickle_runs_only_in_the_sandbox_not_in_this_process(
    registry: FlavorRegistry, tmp_path: Path
) -> None:
    marker = tmp_path / "marker"
    upload = tmp_path / "upload"
    upload.write_bytes(pickle.dumps(TouchOnLoad(marker), protocol=4))

    with pytest.raises(Unprocessable, match="no predict method"):
        inspect_upload(registry, upload, "model.pkl", None, trusted=True)

    # It ran in the sandboxed host (hence "no predict method"), which cannot see tmp_path.
    assert not marker.exists()
    pickle.loads(upload.read_bytes())
    assert marker.exists()  # so the tests around it would have seen it


@pytest.mark.parametrize("compress", [0, 3, ("gzip", 3), ("bz2", 3), ("xz", 3), ("lzma", 3)])
def test_untrusted_joblib_is_refused_with_a_message_about_trust(
    registry: FlavorRegistry, tmp_path: Path, logreg: Any, compress: Any
) -> None:
    path = tmp_path / "upload"
    joblib.dump(logreg, path, compress=compress)

    with pytest.raises(Unprocessable, match="trusted") as caught:
        inspect_upload(registry, path, "model.bin", None, trusted=False)

    message = caught.value.message
    assert "runs code" in message
    assert "skops" in message
    assert "ONNX" in message


@pytest.mark.parametrize("compress", [0, 3])
def test_trusted_joblib_loads_and_predicts(
    registry: FlavorRegistry, tmp_path: Path, logreg: Any, cancer: Data, compress: int
) -> None:
    features, _ = cancer
    path = tmp_path / "model.joblib"
    joblib.dump(logreg, path, compress=compress)

    flavor, signature = inspect_upload(registry, path, "model.joblib", None, trusted=True)
    predictor = registry.get(flavor).load(path, trusted=True)

    assert flavor == "pickle"
    assert signature is not None
    assert signature.inputs[0].shape == [-1, 30]
    np.testing.assert_array_equal(predictor.predict(features), logreg.predict(features))
    proba = predictor.predict_proba(features)
    assert proba is not None
    np.testing.assert_allclose(proba, logreg.predict_proba(features))


def test_pickle_flavor_refuses_to_load_untrusted_even_when_called_directly(
    registry: FlavorRegistry, tmp_path: Path
) -> None:
    marker = tmp_path / "marker"
    upload = tmp_path / "model.pkl"
    upload.write_bytes(pickle.dumps(TouchOnLoad(marker), protocol=4))

    with pytest.raises(Unprocessable, match="not trusted"):
        registry.get("pickle").load(upload, trusted=False)
    assert not marker.exists()
