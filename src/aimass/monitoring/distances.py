"""Drift distances: how far a window moved, in units a person can read.

Numeric default: the Wasserstein (earth mover's) distance divided by the
reference's standard deviation (scipy), so "0.5" reads "moved half a standard
deviation" whatever the feature's unit. Categorical default: the Jensen-Shannon
distance (scipy, base 2: 0 same, 1 disjoint), which is bounded and defined when
a category is missing on one side. PSI (population stability index, the credit
industry's rule of thumb: < 0.1 stable, > 0.25 shifted) is reported beside them;
scipy has no PSI, so it is written here (ten lines over numpy).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from numpy.typing import NDArray

_EPS = 1e-4


def wasserstein_std(reference: NDArray[np.float64], current: NDArray[np.float64]) -> float:
    """Wasserstein distance between the samples, in reference standard deviations."""
    from scipy.stats import wasserstein_distance

    if len(reference) == 0 or len(current) == 0:
        return 0.0
    scale = float(np.std(reference)) or 1.0
    return float(wasserstein_distance(reference, current)) / scale


def category_shares(codes: NDArray[np.int64], count: int) -> NDArray[np.float64]:
    """The share of each of ``count`` category codes (``count`` itself: unknown) in ``codes``."""
    counts = np.bincount(codes, minlength=count + 1).astype(np.float64)
    total = counts.sum()
    return counts / total if total else counts


def jensen_shannon(reference: NDArray[np.float64], current: NDArray[np.float64]) -> float:
    """Jensen-Shannon distance (base 2) between two category-share vectors."""
    from scipy.spatial.distance import jensenshannon

    if reference.sum() == 0 or current.sum() == 0:
        return 0.0
    return float(jensenshannon(reference, current, base=2))


def psi(reference: NDArray[np.float64], current: NDArray[np.float64]) -> float:
    """Population stability index between two share vectors (same bins)."""
    ref = np.clip(reference, _EPS, None)
    cur = np.clip(current, _EPS, None)
    return float(np.sum((cur - ref) * np.log(cur / ref)))


def decile_edges(reference: NDArray[np.float64]) -> NDArray[np.float64]:
    """Inner bin edges at the reference's deciles (duplicates dropped)."""
    if len(reference) == 0:
        return np.array([])
    return np.unique(np.quantile(reference, np.linspace(0.1, 0.9, 9)))


def binned_shares(values: NDArray[np.float64], edges: NDArray[np.float64]) -> NDArray[np.float64]:
    """The share of ``values`` in each bin that ``edges`` make (open-ended at both sides)."""
    counts = np.bincount(np.searchsorted(edges, values, side="right"), minlength=len(edges) + 1)
    total = counts.sum()
    return counts / total if total else counts.astype(np.float64)
