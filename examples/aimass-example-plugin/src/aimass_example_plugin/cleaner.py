"""``example.drop_incomplete``: a data cleaner that drops incomplete or non-finite rows."""

from __future__ import annotations

import numpy as np
import pandas as pd


class DropIncomplete:
    """Drops rows with a missing value, or a numeric value that is not finite."""

    name = "example.drop_incomplete"

    def clean(self, table: pd.DataFrame) -> pd.DataFrame:
        """``table`` without those rows (the index is kept, so callers can align labels)."""
        numeric = table.select_dtypes("number")
        finite = np.isfinite(numeric.to_numpy(dtype=np.float64)).all(axis=1)
        return table[table.notna().all(axis=1).to_numpy() & finite]
