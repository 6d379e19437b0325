"""``linear-json``: a linear model stored as JSON (data, so it needs no trust and no sandbox)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from aimass.errors import Unprocessable
from aimass.flavors.base import Flavor
from aimass.flavors.signature import Signature, TensorSpec

FORMAT = "aimass-linear"
MAX_BYTES = 1024 * 1024


def _read(path: Path) -> tuple[np.ndarray, float]:
    if path.stat().st_size > MAX_BYTES:
        raise Unprocessable("a linear-json model is at most 1 MiB")
    try:
        doc = json.loads(path.read_text())
        if doc.get("format") != FORMAT:
            raise ValueError(f"'format' is not {FORMAT!r}")
        coef = np.asarray(doc["coef"], dtype=np.float64)
        intercept = float(doc.get("intercept", 0.0))
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise Unprocessable(f"not a linear-json model: {exc}") from None
    if coef.ndim != 1 or coef.size == 0 or not np.all(np.isfinite(coef)):
        raise Unprocessable("'coef' must be a non-empty list of finite numbers")
    return coef, intercept


class LinearPredictor:
    """``x @ coef + intercept`` for float rows."""

    def __init__(self, coef: np.ndarray, intercept: float, signature: Signature) -> None:
        self.coef = coef
        self.intercept = intercept
        self.signature: Signature | None = signature

    def predict(self, batch: Any) -> np.ndarray:
        """One value per row."""
        x = np.asarray(batch if not isinstance(batch, dict) else next(iter(batch.values())))
        return np.asarray(x, dtype=np.float64) @ self.coef + self.intercept

    def predict_proba(self, batch: Any) -> None:
        """A regression: no probabilities."""
        return None


class LinearJsonFlavor(Flavor):
    """A file ``*.linear.json`` holding ``{"format": "aimass-linear", "coef", "intercept"}``."""

    name = "linear-json"

    def sniff(self, path: Path, filename: str) -> bool:
        """By name and first bytes only."""
        if not filename.endswith(".linear.json"):
            return False
        with path.open("rb") as f:
            return f.read(1).strip() in (b"{", b"")

    def _signature(self, coef: np.ndarray) -> Signature:
        return Signature(
            inputs=[TensorSpec(name="x", datatype="FP64", shape=[-1, int(coef.size)])],
            outputs=[TensorSpec(name="predict", datatype="FP64", shape=[-1])],
        )

    def inspect(self, path: Path, trusted: bool) -> Signature | None:
        """Parse and check the numbers; the signature follows from ``coef``."""
        coef, _ = _read(path)
        return self._signature(coef)

    def load(self, path: Path, trusted: bool) -> LinearPredictor:
        """The predictor over the parsed numbers."""
        coef, intercept = _read(path)
        return LinearPredictor(coef, intercept, self._signature(coef))
