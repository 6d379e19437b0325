"""The built-in drift tests (the ``drift_tests`` plugin slot), all from scipy.

``ks`` (numeric default): the Kolmogorov-Smirnov two-sample test. It needs no
binning and no assumption on the distribution's shape, reacts to a shift of
location or scale, and its asymptotic p-value costs one sort, so it stays cheap
on every window. ``cvm`` (Cramer-von Mises) weighs the whole distribution rather
than its largest gap; ``anderson`` weighs the tails. ``chi2`` (categorical
default): Pearson's chi-square test of homogeneity on the two samples'
category counts, the textbook test for "same category frequencies".
"""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from numpy.typing import NDArray


class KolmogorovSmirnov:
    """Two-sample Kolmogorov-Smirnov (asymptotic p-value): the numeric default."""

    name = "ks"

    def p_value(self, reference: NDArray[np.float64], current: NDArray[np.float64]) -> float:
        """The test's p-value; 1.0 when either sample is empty."""
        from scipy.stats import ks_2samp

        if len(reference) == 0 or len(current) == 0:
            return 1.0
        return float(ks_2samp(reference, current, method="asymp").pvalue)


class CramerVonMises:
    """Two-sample Cramer-von Mises test (asymptotic p-value)."""

    name = "cvm"

    def p_value(self, reference: NDArray[np.float64], current: NDArray[np.float64]) -> float:
        """The test's p-value; 1.0 when either sample has fewer than two values."""
        from scipy.stats import cramervonmises_2samp

        if len(reference) < 2 or len(current) < 2:
            return 1.0
        return float(cramervonmises_2samp(reference, current, method="asymptotic").pvalue)


class AndersonDarling:
    """k-sample Anderson-Darling test (p-value capped to [0.001, 0.25] by scipy's table)."""

    name = "anderson"

    def p_value(self, reference: NDArray[np.float64], current: NDArray[np.float64]) -> float:
        """The test's (capped) p-value; 1.0 when either sample has fewer than two values."""
        from scipy.stats import anderson_ksamp

        if len(reference) < 2 or len(current) < 2:
            return 1.0
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # scipy warns when it caps the p-value
            return float(anderson_ksamp([reference, current]).pvalue)


class ChiSquare:
    """Chi-square test of homogeneity on category counts: the categorical default."""

    name = "chi2"

    def p_value(self, reference: NDArray[Any], current: NDArray[Any]) -> float:
        """The test's p-value; 1.0 when the samples show fewer than two categories."""
        from scipy.stats import chi2_contingency

        if len(reference) == 0 or len(current) == 0:
            return 1.0
        both = np.concatenate([reference, current])
        if both.dtype == object:
            both = both.astype(str)
        categories, inverse = np.unique(both, return_inverse=True)
        if len(categories) < 2:
            return 1.0
        split = len(reference)
        table = np.stack(
            [
                np.bincount(inverse[:split], minlength=len(categories)),
                np.bincount(inverse[split:], minlength=len(categories)),
            ]
        )
        return float(chi2_contingency(table, correction=False).pvalue)


BUILTIN_TESTS = (KolmogorovSmirnov(), CramerVonMises(), AndersonDarling(), ChiSquare())
