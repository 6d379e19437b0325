"""``example.geometric_mean``: combine members' probabilities by a weighted geometric mean."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


class GeometricMean:
    """``exp(sum w_i log p_i) / sum w_i``, renormalised per row; reads ``predict_proba``."""

    name = "example.geometric_mean"
    consumes = "predict_proba"

    def fuse(self, outputs: Sequence[np.ndarray], weights: Sequence[float]) -> np.ndarray:
        """One probability row per input row."""
        w = np.asarray(weights, dtype=np.float64)
        logs = np.log(np.clip(np.stack([np.asarray(o, np.float64) for o in outputs]), 1e-12, 1))
        fused = np.exp(np.tensordot(w / w.sum(), logs, axes=1))
        return fused / fused.sum(axis=1, keepdims=True)
