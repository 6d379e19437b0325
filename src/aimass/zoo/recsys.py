"""``recsys.matrix_factorization``: implicit-feedback recommendations (BPR), served as top-k.

Trained on (user, item) interactions: every row is a positive, and each epoch
pairs every positive with sampled negatives (Bayesian personalized ranking).
User and item ids are integers ``>= 0``; the model's id space is 0..max id.
Each user's interactions are split into training and held-out ones (seeded);
recall@k and NDCG@k on the held-out items are logged every epoch.

The registered TorchScript model takes user ids, ``user`` int64 ``[-1]``, and
answers ``items`` int64 ``[-1, k]`` (best first) and their ``scores`` — items
the user had in training are left out (``exclude_seen``), and a user it never
saw gets the most popular items. Its ``evaluate`` hook scores a version on a
dataset: on the one it was trained on, against the held-out split again; on
another, against all of that dataset's interactions.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from aimass.plugins.entries import BuiltinDataset, Entry
from aimass.zoo._extras import TORCH
from aimass.zoo._recsys_data import (
    ENTRY,
    MAX_CELLS,
    FactorizationParams,
    holdout,
    interactions,
    relevant_sets,
)

if TYPE_CHECKING:
    from aimass.evaluation import EvaluationReport
    from aimass.flavors.base import Predictor
    from aimass.registry.entities import ModelVersion
    from aimass.runtime import JobContext

__all__ = [
    "DATASETS",
    "ENTRIES",
    "ENTRY",
    "MAX_CELLS",
    "FactorizationParams",
    "build_ratings",
    "evaluate",
    "holdout",
    "interactions",
    "relevant_sets",
    "train",
]


def build_ratings(folder: Path, users: int = 300, items: int = 120, seed: int = 11) -> Path:
    """Write ``ratings.csv`` (user, item, rating): users with genre tastes, items with genres.

    Each user prefers one or two of six genres (a Dirichlet draw) and picks 8 to
    30 items, each with chance proportional to the taste for its genre times its
    popularity within the genre; the rating (1-5) grows with that taste.
    """
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(seed)
    genres = 6
    genre = np.arange(items) % genres
    popularity = 1.0 / (1 + rng.permutation(items) % (items // genres))
    rows: list[tuple[int, int, int]] = []
    for user in range(users):
        taste = rng.dirichlet(np.full(genres, 0.3))
        weights = taste[genre] * popularity + 1e-3
        picks = rng.choice(
            items, size=int(rng.integers(8, 31)), replace=False, p=weights / weights.sum()
        )
        for item in picks:
            stars = 1 + 4 * taste[genre[item]] / taste.max() + rng.normal(0, 0.5)
            rows.append((user, int(item), int(np.clip(round(stars), 1, 5))))
    path = folder / "ratings.csv"
    pd.DataFrame(rows, columns=["user", "item", "rating"]).to_csv(path, index=False)
    return path


DATASETS = [
    BuiltinDataset(
        "ratings",
        "Implicit feedback: which of 120 items (six genres) 300 users interacted with, and "
        "their 1-5 rating; users have genre tastes, items popularity (generated, seeded).",
        "ranking",
        "ratings.csv",
        build_ratings,
        "about 5,700 interactions, 300 users, 120 items",
        "generated",
    )
]

ENTRIES = [
    Entry(
        name=ENTRY,
        kinds=frozenset({"train"}),
        target="aimass.zoo.recsys:train",
        description=(
            "Matrix factorization for implicit feedback, trained with BPR and sampled "
            "negatives in PyTorch; logs recall@k and NDCG@k on held-out interactions each "
            "epoch, resumable; served as TorchScript: user ids in, top-k item ids and scores out."
        ),
        params=FactorizationParams,
        needs_dataset=True,
        task="ranking",
        family="recsys",
        default_dataset="ratings",
        exports=("torchscript",),
        needs=TORCH,
        signature={
            "inputs": [{"name": "user", "datatype": "INT64", "shape": [-1]}],
            "outputs": [
                {"name": "items", "datatype": "INT64", "shape": [-1, 10]},
                {"name": "scores", "datatype": "FP32", "shape": [-1, 10]},
            ],
        },
        example_request={
            "inputs": [{"name": "user", "datatype": "INT64", "shape": [2], "data": [0, 1]}]
        },
        evaluate="aimass.zoo.recsys:evaluate",
    )
]


def train(raw: dict[str, Any]) -> dict[str, Any]:
    """Train with BPR epoch by epoch (scored, checkpointed); register the top-k module."""
    from aimass import runtime
    from aimass.zoo._recsys_fit import fit

    params = FactorizationParams.model_validate(raw)
    ctx = runtime.context()
    return fit(ctx, params)


def evaluate(
    ctx: JobContext, loaded: Predictor, version: ModelVersion, params: dict[str, Any]
) -> EvaluationReport:
    """recall@k and NDCG@k of a version's top-k lists on the job's dataset.

    On the dataset (and version) the model was trained on, the relevant items
    are the held-out split, made again from the seed and fraction in its tags;
    on any other dataset, every interaction it holds is relevant.
    """
    import numpy as np

    from aimass.evaluation import ranking_report

    tags = version.tags
    pairs = interactions(
        ctx.load_dataset(), tags.get("user_column", "user"), tags.get("item_column", "item")
    )
    lineage = version.lineage
    same = lineage.dataset == ctx.dataset and (
        ctx.dataset_version is None or lineage.dataset_version in (None, ctx.dataset_version)
    )
    if same and "split_seed" in tags:
        _, pairs = holdout(pairs, float(tags["test_fraction"]), int(tags["split_seed"]))
    users, relevant = relevant_sets(pairs)
    ranked = np.asarray(loaded.predict({"user": np.asarray(users, dtype=np.int64)}))
    report = ranking_report(relevant, ranked.tolist(), k=ranked.shape[1])
    scope = "the held-out split of its training data" if same else f"every row of {ctx.dataset}"
    details = {**report.details, "relevant": scope}
    return report.model_copy(update={"details": details})
