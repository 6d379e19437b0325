"""``example.mean_shift``: a drift test on the difference of two samples' means."""

from __future__ import annotations

import math

import numpy as np


class MeanShift:
    """A two-sided z-test (Welch's standard error); small p-value: the mean moved."""

    name = "example.mean_shift"

    def p_value(self, reference: np.ndarray, current: np.ndarray) -> float:
        """How likely a mean difference this large is if nothing drifted."""
        a = np.asarray(reference, dtype=np.float64)
        b = np.asarray(current, dtype=np.float64)
        if a.size < 2 or b.size < 2:
            return 1.0
        se = math.sqrt(a.var(ddof=1) / a.size + b.var(ddof=1) / b.size)
        if se == 0:
            return 1.0 if a.mean() == b.mean() else 0.0
        z = abs(a.mean() - b.mean()) / se
        return math.erfc(z / math.sqrt(2))
