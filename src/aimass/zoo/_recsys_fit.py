"""Training ``recsys.matrix_factorization``: BPR with sampled negatives, scored as served.

Imported only inside the job's process. Each epoch's recall@k and NDCG@k come
from the very module that is registered (:class:`TopK` over the current
factors), so the logged quality is the served model's.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from aimass.zoo._recsys_torch import Factorization, TopK

if TYPE_CHECKING:
    from aimass.runtime import JobContext
    from aimass.zoo._recsys_data import FactorizationParams


def fit(ctx: JobContext, params: FactorizationParams) -> dict[str, Any]:
    """Split, train epoch by epoch (resumable), register the top-k module; the outputs."""
    from aimass.evaluation import ranking_report
    from aimass.flavors.signature import Signature, TensorSpec
    from aimass.zoo._recsys_data import (
        ENTRY,
        MAX_CELLS,
        holdout,
        interactions,
        relevant_sets,
    )
    from aimass.zoo._torch import batches, record_pid, run_epochs, setup

    record_pid(ctx)
    _, device = setup(params.seed)
    pairs = interactions(ctx.load_dataset(), params.user_column, params.item_column)
    if len(pairs) == 0:
        raise ValueError("the dataset holds no interactions")
    n_users, n_items = int(pairs[:, 0].max()) + 1, int(pairs[:, 1].max()) + 1
    if n_users * n_items > MAX_CELLS:
        raise ValueError(
            f"{n_users} users x {n_items} items is over {MAX_CELLS} cells, the most this entry "
            "serves; renumber the ids densely or use fewer"
        )
    k = min(params.top_k, n_items)
    train_pairs, held_pairs = holdout(pairs, params.test_fraction, params.seed)
    seen = torch.zeros(n_users, n_items, dtype=torch.bool)
    seen[train_pairs[:, 0], train_pairs[:, 1]] = True
    popularity = torch.from_numpy(np.bincount(train_pairs[:, 1], minlength=n_items))
    users, relevant = relevant_sets(held_pairs)
    eval_users = torch.tensor(users, dtype=torch.int64)
    print(
        f"{n_users} users, {n_items} items: {len(train_pairs)} interactions to train on, "
        f"{len(held_pairs)} held out ({len(users)} users)",
        flush=True,
    )

    model = Factorization(n_users, n_items, params.factors).to(device)
    optimizer = torch.optim.AdamW(
        model.parameters(), lr=params.learning_rate, weight_decay=params.weight_decay
    )
    positives = torch.from_numpy(train_pairs).to(device)

    def train_epoch(epoch: int) -> dict[str, float]:
        total = 0.0
        for index in batches(torch, len(positives), params.batch_size):
            user, item = positives[index, 0], positives[index, 1]
            negative = torch.randint(n_items, (len(index), params.negatives), device=device)
            margin = model(user, item).unsqueeze(1) - model(user, negative)
            loss: Any = -torch.nn.functional.logsigmoid(margin).mean()
            if params.regularization:
                loss = loss + params.regularization * model.penalty(user, item, negative)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            total += loss.item() * len(index)
        return {"train_loss": total / len(positives)}

    def served() -> TopK:
        return TopK(model, seen, popularity, k, params.exclude_seen).eval()

    def score() -> dict[str, float]:
        if not users:
            return {}
        ranked = served()(eval_users)[0].tolist()
        return dict(ranking_report(relevant, ranked, k=k).metrics)

    ctx.log_params(params.model_dump(mode="json"))
    resumed_from, seconds = run_epochs(ctx, params, model, optimizer, train_epoch, score)
    model.eval()
    with torch.no_grad():
        metrics = score()
        module = served()
    metrics[f"random_recall_at_{k}"] = k / n_items
    if users:
        # The baseline to beat: everyone gets the most popular items they do not have yet.
        crowd = popularity.float().expand(len(users), n_items)
        crowd = crowd.masked_fill(seen[eval_users], -1.0)
        ranked = crowd.topk(k, dim=1).indices.tolist()
        baseline = ranking_report(relevant, ranked, k=k).metrics[f"recall_at_{k}"]
        metrics[f"popularity_recall_at_{k}"] = baseline
    signature = Signature(
        inputs=[TensorSpec(name="user", datatype="INT64", shape=[-1])],
        outputs=[
            TensorSpec(name="items", datatype="INT64", shape=[-1, k]),
            TensorSpec(name="scores", datatype="FP32", shape=[-1, k]),
        ],
    )
    version = ctx.register_model(
        params.model_name or f"{ctx.dataset}-mf",
        module,
        signature=signature,
        metrics=metrics,
        tags={
            "task": "ranking",
            "entry": ENTRY,
            "user_column": params.user_column,
            "item_column": params.item_column,
            "split_seed": str(params.seed),
            "test_fraction": str(params.test_fraction),
        },
        description=f"{ENTRY} on {ctx.dataset}: {params.factors} factors, top {k}",
    )
    return {
        **metrics,
        "model": version.model,
        "model_version": version.version,
        "users": n_users,
        "items": n_items,
        "epochs": params.epochs,
        "resumed_from": resumed_from,
        "train_seconds": seconds,
    }
