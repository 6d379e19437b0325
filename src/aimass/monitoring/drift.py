"""Per-feature drift of a window of live rows against a reference table.

Each feature gets a test (a p-value, from the ``drift_tests`` registry) and a
distance. A feature drifts when both say so:

- its p-value is below ``alpha / k`` (Bonferroni over the ``k`` features, so a
  window of in-distribution rows raises a false alarm with probability at most
  ``alpha`` whatever the number of features), and
- its distance is above a threshold calibrated on the reference by bootstrap:
  ``bootstrap`` pairs (a window of the live window's size and a reference of the
  reference's size, both drawn with replacement from the reference) give the
  distance's null distribution, and the threshold is its ``1 - alpha / k``
  quantile, and never below ``min_effect`` (0.1 reference standard deviations
  for numbers, 0.03 Jensen-Shannon for categories). The floor is what keeps a
  large window from firing on a difference too small to matter
  (evidently#50): with many rows any p-value and any null quantile get small,
  the effect a person cares about does not.

The default ``alpha`` is 0.005, half the 1 % false-alarm budget: the tests'
p-values are exact for a fresh reference, but the reference is one fixed
sample, and its own sampling error lifts the real rate above ``alpha``
(about 1.2 % at ``alpha = 0.01`` in tests/monitoring/test_drift.py); a half
standard deviation shift in 250 rows still gives p-values near 1e-8.

Thresholds depend on the window size, so they are computed once per size bucket
and kept: sizes are rounded down to a grid eight steps per doubling (a step is
9 %, so a threshold, which shrinks like ``1 / sqrt(rows)``, is at most 4.5 %
higher than the exact size's: slightly conservative). Sliding windows rarely
repeat a size exactly; without the grid every window paid a fresh bootstrap
(about a second for five features). The reference is subsampled to
``max_reference_rows`` for speed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from aimass.entities.monitoring import DriftReport, FeatureDrift, FeatureKind
from aimass.errors import InvalidInput
from aimass.monitoring.distances import (
    binned_shares,
    category_shares,
    decile_edges,
    jensen_shannon,
    psi,
    wasserstein_std,
)

if TYPE_CHECKING:
    import pandas as pd
    from numpy.typing import NDArray

    from aimass.plugins.slots import DriftTest

#: A numeric column with at most this many distinct values is treated as categorical.
MAX_NUMERIC_LEVELS = 10


@dataclass(frozen=True)
class DriftSettings:
    """How drift is judged: the family-wise alarm rate, bootstrap size and default tests."""

    alpha: float = 0.005
    bootstrap: int = 200
    numeric_test: str = "ks"
    categorical_test: str = "chi2"
    max_reference_rows: int = 5000
    #: The smallest distance that counts as drift (Wasserstein in std units).
    min_effect_numeric: float = 0.1
    #: The smallest Jensen-Shannon distance that counts as drift.
    min_effect_categorical: float = 0.03
    seed: int = 0


@dataclass
class _Feature:
    name: str
    kind: FeatureKind
    #: Numbers, or category codes (index into ``categories``; ``len(categories)``: unseen).
    values: NDArray[Any]
    test: DriftTest
    categories: list[str] = field(default_factory=list)
    shares: NDArray[np.float64] = field(default_factory=lambda: np.zeros(0))
    edges: NDArray[np.float64] = field(default_factory=lambda: np.zeros(0))
    thresholds: dict[int, float] = field(default_factory=dict)


def feature_kind(column: pd.Series) -> FeatureKind:
    """Numeric: a number column with over ``MAX_NUMERIC_LEVELS`` values; else categorical."""
    import pandas as pd

    numeric = pd.api.types.is_numeric_dtype(column) and not pd.api.types.is_bool_dtype(column)
    if numeric and column.nunique(dropna=True) > MAX_NUMERIC_LEVELS:
        return "numeric"
    return "categorical"


class DriftDetector:
    """Judges windows of rows against one reference table, feature by feature."""

    def __init__(
        self,
        reference: pd.DataFrame,
        tests: dict[str, DriftTest],
        settings: DriftSettings | None = None,
        *,
        features: list[str] | None = None,
    ) -> None:
        self.settings = settings or DriftSettings()
        if not 0 < self.settings.alpha < 1:
            raise InvalidInput("alpha must be between 0 and 1")
        names = features if features is not None else [str(c) for c in reference.columns]
        missing = [n for n in names if n not in reference.columns]
        if missing:
            raise InvalidInput(f"the reference has no column {missing[0]!r}")
        if not names:
            raise InvalidInput("the reference has no feature to compare")
        rng = np.random.default_rng(self.settings.seed)
        if len(reference) > self.settings.max_reference_rows:
            picked = rng.choice(len(reference), self.settings.max_reference_rows, replace=False)
            reference = reference.iloc[np.sort(picked)]
        self.reference_rows = len(reference)
        self._features = [self._feature(reference[n], n, tests) for n in names]
        self._alpha_each = self.settings.alpha / len(self._features)

    @property
    def features(self) -> list[str]:
        """The features judged, in order."""
        return [f.name for f in self._features]

    def _feature(self, column: pd.Series, name: str, tests: dict[str, DriftTest]) -> _Feature:
        kind = feature_kind(column)
        test_name = (
            self.settings.numeric_test if kind == "numeric" else self.settings.categorical_test
        )
        if test_name not in tests:
            known = ", ".join(tests) or "none"
            raise InvalidInput(f"no drift test named {test_name!r} (known: {known})")
        if kind == "numeric":
            values = column.dropna().to_numpy(dtype=np.float64)
            return _Feature(name, kind, values, tests[test_name], edges=decile_edges(values))
        labels = column.dropna().astype(str)
        categories = sorted(set(labels))
        codes = _codes(labels, categories)
        return _Feature(
            name, kind, codes, tests[test_name], categories, category_shares(codes, len(categories))
        )

    @staticmethod
    def _distance(feature: _Feature, reference: NDArray[Any], current: NDArray[Any]) -> float:
        if feature.kind == "numeric":
            return wasserstein_std(reference, current)
        count = len(feature.categories)
        return jensen_shannon(category_shares(reference, count), category_shares(current, count))

    def threshold(self, feature: str, rows: int) -> float:
        """The calibrated distance threshold of ``feature`` for windows of ``rows`` rows."""
        for f in self._features:
            if f.name == feature:
                return self._threshold(f, rows)
        raise InvalidInput(f"no feature {feature!r}")

    def _threshold(self, feature: _Feature, rows: int) -> float:
        rows = size_bucket(rows)
        cached = feature.thresholds.get(rows)
        if cached is not None:
            return cached
        rng = np.random.default_rng([self.settings.seed, rows])
        values = feature.values
        size = len(values)
        if size == 0 or rows == 0:
            feature.thresholds[rows] = float("inf")
            return float("inf")
        null = np.empty(self.settings.bootstrap)
        for i in range(self.settings.bootstrap):
            ref = values[rng.integers(0, size, size)]
            cur = values[rng.integers(0, size, rows)]
            null[i] = self._distance(feature, ref, cur)
        floor = (
            self.settings.min_effect_numeric
            if feature.kind == "numeric"
            else self.settings.min_effect_categorical
        )
        found = max(float(np.quantile(null, 1 - self._alpha_each)), floor)
        feature.thresholds[rows] = found
        return found

    def check(self, window: pd.DataFrame) -> DriftReport:
        """The drift of every feature in ``window`` (a table with the reference's columns)."""
        missing = [f.name for f in self._features if f.name not in window.columns]
        if missing:
            raise InvalidInput(f"the window has no column {missing[0]!r}")
        results = [self._judge(f, window[f.name]) for f in self._features]
        return DriftReport(
            rows=len(window),
            reference_rows=self.reference_rows,
            alpha=self.settings.alpha,
            features=results,
            drifted=[r.feature for r in results if r.drifted],
        )

    def _judge(self, feature: _Feature, column: pd.Series) -> FeatureDrift:
        if feature.kind == "numeric":
            import pandas as pd

            numbers = pd.to_numeric(column, errors="coerce").dropna()
            current: NDArray[Any] = numbers.to_numpy(np.float64)
            stability = psi(
                binned_shares(feature.values, feature.edges),
                binned_shares(current, feature.edges),
            )
            distance = "wasserstein_std"
        else:
            current = _codes(column.dropna().astype(str), feature.categories)
            stability = psi(feature.shares, category_shares(current, len(feature.categories)))
            distance = "jensen_shannon"
        p_value = feature.test.p_value(feature.values, current)
        score = self._distance(feature, feature.values, current)
        threshold = self._threshold(feature, len(current))
        return FeatureDrift(
            feature=feature.name,
            kind=feature.kind,
            test=feature.test.name,
            p_value=p_value,
            distance=distance,
            score=score,
            threshold=threshold,
            psi=stability,
            drifted=bool(p_value < self._alpha_each and score > threshold),
        )


def size_bucket(rows: int) -> int:
    """``rows`` rounded down to a grid of eight steps per doubling (exact up to 16)."""
    if rows <= 16:
        return rows
    return int(2 ** (math.floor(math.log2(rows) * 8 + 1e-9) / 8))


def _codes(labels: pd.Series, categories: list[str]) -> NDArray[np.int64]:
    """Each label's index in ``categories``; an unseen label gets ``len(categories)``."""
    import pandas as pd

    codes: NDArray[np.int64] = pd.Categorical(labels, categories=categories).codes.astype(np.int64)
    codes[codes < 0] = len(categories)
    return codes
