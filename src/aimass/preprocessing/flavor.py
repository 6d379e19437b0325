"""The ``preprocessing`` flavor: a fitted pipeline (``*.preprocessing.json``) served as a model.

It is data, so it loads in-process with no trust needed. Its inputs are the
pipeline's columns (numeric ones FP64, the others BYTES), its one output
``features`` the float64 matrix; a ``sequence`` deployment feeds it to the model.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from aimass.errors import InvalidInput, Unprocessable
from aimass.flavors.base import Flavor
from aimass.flavors.signature import Signature, TensorSpec
from aimass.preprocessing.pipeline import FittedPipeline

SUFFIX = ".preprocessing.json"
MAX_BYTES = 16 * 1024 * 1024


def _read(path: Path) -> FittedPipeline:
    if path.stat().st_size > MAX_BYTES:
        raise Unprocessable("a preprocessing pipeline is at most 16 MiB")
    try:
        return FittedPipeline.from_json(path.read_bytes())
    except InvalidInput as exc:
        raise Unprocessable(exc.message) from None


def pipeline_signature(pipeline: FittedPipeline) -> Signature:
    """One input per column, one ``features`` output with its column names."""
    names = pipeline.feature_names()
    return Signature(
        inputs=[
            TensorSpec(name=c.name, datatype="FP64" if c.kind == "numeric" else "BYTES", shape=[-1])
            for c in pipeline.columns
        ],
        outputs=[
            TensorSpec(name="features", datatype="FP64", shape=[-1, len(names)], columns=names)
        ],
        allows_missing=True,
    )


class PipelinePredictor:
    """``predict`` is the pipeline's transform of the batch's columns."""

    def __init__(self, pipeline: FittedPipeline) -> None:
        self.pipeline = pipeline
        self.signature: Signature | None = pipeline_signature(pipeline)

    def predict(self, batch: Any) -> np.ndarray:
        """The float64 features of the rows."""
        if not isinstance(batch, dict):
            raise InvalidInput("a preprocessing pipeline takes its columns by name")
        return self.pipeline.transform(batch)

    def predict_proba(self, batch: Any) -> None:
        """No probabilities."""
        return None


class PreprocessingFlavor(Flavor):
    """A fitted ``aimass.preprocessing`` pipeline as JSON."""

    name = "preprocessing"

    def sniff(self, path: Path, filename: str) -> bool:
        """By name and first byte only."""
        if not filename.endswith(SUFFIX):
            return False
        with path.open("rb") as f:
            return f.read(1) == b"{"

    def inspect(self, path: Path, trusted: bool) -> Signature | None:
        """Parse and check it; the signature follows from its columns."""
        return pipeline_signature(_read(path))

    def load(self, path: Path, trusted: bool) -> PipelinePredictor:
        """The pipeline, ready to transform."""
        return PipelinePredictor(_read(path))
