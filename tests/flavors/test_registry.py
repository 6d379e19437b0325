"""The flavor registry: names, detection order, and the upload check."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import ClassVar

import pytest

from aimass.errors import Conflict, InvalidInput, Unprocessable
from aimass.flavors.base import Flavor, Predictor
from aimass.flavors.registry import FlavorRegistry, inspect_upload
from aimass.flavors.signature import Signature
from aimass.plugins import default_registries

BUILTINS = ["transformers", "torchscript", "torch-pickle", "sklearn", "pickle", "onnx"]


class TextFlavor(Flavor):
    """A toy flavor for files that start with ``TEXT``."""

    name: ClassVar[str] = "text"

    def sniff(self, path: Path, filename: str) -> bool:
        return path.read_bytes().startswith(b"TEXT")

    def inspect(self, path: Path, trusted: bool) -> Signature | None:
        return None

    def load(self, path: Path, trusted: bool) -> Predictor:
        raise NotImplementedError


def test_default_registry_holds_the_builtins_in_detection_order() -> None:
    registry = default_registries().flavors

    assert registry.names()[: len(BUILTINS)] == BUILTINS
    assert default_registries().flavors is registry


def test_unknown_flavor_names_the_known_ones(registry: FlavorRegistry) -> None:
    with pytest.raises(
        InvalidInput, match="unknown flavor 'xgboost'; known flavors: transformers, torchscript"
    ):
        registry.get("xgboost")


def test_undetectable_file_asks_for_a_flavor(registry: FlavorRegistry, tmp_path: Path) -> None:
    path = tmp_path / "notes"
    path.write_bytes(b"just some text")

    with pytest.raises(
        InvalidInput, match=r"could not tell the flavor of 'notes.txt'; pass flavor="
    ):
        inspect_upload(registry, path, "notes.txt", None, trusted=False)


def test_a_second_flavor_with_a_taken_name_conflicts(registry: FlavorRegistry) -> None:
    registry.register(TextFlavor())

    with pytest.raises(Conflict, match="'text'"):
        registry.register(TextFlavor())


def test_registered_flavor_is_detected_and_inspected(
    registry: FlavorRegistry, tmp_path: Path
) -> None:
    registry.register(TextFlavor())
    path = tmp_path / "upload"
    path.write_bytes(b"TEXT model")

    assert inspect_upload(registry, path, "m.txt", None, trusted=False) == ("text", None)


def test_a_named_flavor_must_agree_with_the_file(registry: FlavorRegistry, tmp_path: Path) -> None:
    path = tmp_path / "upload"
    path.write_bytes(b"just some text")

    with pytest.raises(Unprocessable, match="does not look like a model file of flavor 'sklearn'"):
        inspect_upload(registry, path, "model.skops", "sklearn", trusted=False)


def test_importing_flavors_and_plugins_imports_no_ml_library() -> None:
    code = (
        "import sys, aimass.flavors, aimass.flavors.registry, aimass.flavors.base, aimass.plugins;"
        "heavy = [m for m in ('torch', 'sklearn', 'onnx', 'onnxruntime', 'skops', 'joblib', "
        "'numpy') if m in sys.modules];"
        "print(','.join(heavy))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )

    assert result.stdout.strip() == ""
