"""What ``recsys.matrix_factorization``'s entry and its training share, free of torch.

The params, the interactions table, the held-out split and the relevant sets:
``recsys`` (the catalogue entry and its ``evaluate`` hook) and ``_recsys_fit`` (the
training, imported only inside the job's process) both build on this module, so
neither imports the other.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pydantic import Field

from aimass.zoo._torch import TorchParams

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

    Array = np.ndarray[Any, Any]

ENTRY = "recsys.matrix_factorization"
#: A dense "seen" matrix past this many cells is refused (the served model holds it).
MAX_CELLS = 50_000_000


class FactorizationParams(TorchParams):
    """``recsys.matrix_factorization``."""

    user_column: str = Field(default="user", min_length=1)
    item_column: str = Field(default="item", min_length=1)
    factors: int = Field(default=32, ge=1, le=1024, description="latent dimensions")
    negatives: int = Field(default=4, ge=1, le=100, description="sampled negatives a positive")
    epochs: int = Field(default=20, ge=1, le=10_000)
    learning_rate: float = Field(default=0.02, gt=0, le=10)
    batch_size: int = Field(default=256, ge=1, le=1_000_000)
    regularization: float = Field(
        default=0.03, ge=0, le=10, description="L2 penalty on the factors a batch uses"
    )
    test_fraction: float = Field(
        default=0.2, gt=0, lt=1, description="share of each user's interactions held out"
    )
    top_k: int = Field(default=10, ge=1, le=1000, description="items the served model returns")
    exclude_seen: bool = Field(default=True, description="leave out the user's training items")


def interactions(frame: pd.DataFrame, user_column: str, item_column: str) -> Array:
    """The distinct (user, item) pairs of a table as an int64 [n, 2] array."""
    import numpy as np

    for column in (user_column, item_column):
        if column not in frame.columns:
            raise ValueError(
                f"the dataset has no column {column!r} (columns: {list(frame.columns)})"
            )
    pairs = frame[[user_column, item_column]].dropna()
    values = pairs.to_numpy()
    if not np.issubdtype(values.dtype, np.number) or (values != np.round(values)).any():
        raise ValueError(f"{user_column!r} and {item_column!r} must hold integer ids")
    values = values.astype(np.int64)
    if (values < 0).any():
        raise ValueError(f"{user_column!r} and {item_column!r} must hold ids >= 0")
    return np.unique(values, axis=0)


def holdout(pairs: Array, fraction: float, seed: int) -> tuple[Array, Array]:
    """(training, held-out) pairs: each user's share ``fraction`` held out, at least one kept."""
    import numpy as np

    rng = np.random.default_rng(seed)
    held = np.zeros(len(pairs), dtype=bool)
    order = np.argsort(pairs[:, 0], kind="stable")
    starts = np.flatnonzero(np.r_[True, np.diff(pairs[order, 0]) != 0])
    for rows in np.split(order, starts[1:]):
        count = min(round(len(rows) * fraction), len(rows) - 1)
        held[rng.permutation(rows)[:count]] = True
    return pairs[~held], pairs[held]


def relevant_sets(pairs: Array) -> tuple[list[int], list[set[int]]]:
    """The users of ``pairs`` (sorted) and each one's set of items."""
    found: dict[int, set[int]] = {}
    for user, item in pairs.tolist():
        found.setdefault(user, set()).add(item)
    users = sorted(found)
    return users, [found[u] for u in users]
