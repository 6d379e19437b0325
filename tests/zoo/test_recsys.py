"""``recsys.matrix_factorization``: BPR on generated ratings, top-k served, evaluated by rank."""

from __future__ import annotations

from pathlib import Path

import httpx
import numpy as np
import pandas as pd
import pytest

from zoo.conftest import bad_params, evaluate, infer, serve, train
from zoo.torch_jobs import epoch_metric

pytestmark = pytest.mark.torch

ENTRY = "recsys.matrix_factorization"


def test_factorization_beats_random_and_popularity_and_serves_top_k(
    api: httpx.Client, tmp_path: Path
) -> None:
    from aimass.zoo.recsys import build_ratings, holdout, interactions

    job = train(api, ENTRY, {"epochs": 15})
    assert job["dataset"] == "ratings", "the entry's default dataset, generated on first use"
    outputs = job["outputs"]
    recall = outputs["recall_at_10"]
    assert outputs["random_recall_at_10"] == pytest.approx(10 / 120)
    assert recall >= 3 * outputs["random_recall_at_10"], outputs
    assert recall >= 1.3 * outputs["popularity_recall_at_10"], outputs
    assert outputs["ndcg_at_10"] > 0.3, outputs
    logged = epoch_metric(api, job["id"], "recall_at_10")
    assert [m["step"] for m in logged] == list(range(1, 16))
    assert len(epoch_metric(api, job["id"], "ndcg_at_10")) == 15
    version = api.get(f"/api/v1/models/{outputs['model']}/versions/{outputs['model_version']}")
    body = version.json()
    assert body["flavor"] == "torchscript"
    assert body["tags"]["task"] == "ranking" and body["tags"]["entry"] == ENTRY
    assert body["signature"]["inputs"] == [{"name": "user", "datatype": "INT64", "shape": [-1]}]

    # Served: the top 10 of each user, best first, none of the items it trained on.
    name = serve(api, job, "recs")
    users = [0, 1, 2, 5000, -3]  # the last two were never seen: they get the popular items
    answer = infer(api, name, [{"name": "user", "datatype": "INT64", "shape": [5], "data": users}])
    assert answer["items"]["shape"] == [5, 10]
    items = np.asarray(answer["items"]["data"]).reshape(5, 10)
    assert answer["scores"]["shape"] == [5, 10]
    scores = np.asarray(answer["scores"]["data"]).reshape(5, 10)
    assert (np.diff(scores, axis=1) <= 1e-6).all(), "best first"
    assert all(len(set(row)) == 10 for row in items.tolist())
    assert np.array_equal(items[3], items[4])
    frame = pd.read_csv(build_ratings(tmp_path))
    trained, _ = holdout(interactions(frame, "user", "item"), 0.2, 0)
    for user in users[:3]:
        had = set(trained[trained[:, 0] == user, 1].tolist())
        assert had and not had & set(items[user].tolist()), user
    counts = np.bincount(trained[:, 1], minlength=120)
    assert set(items[3].tolist()) == set(np.argsort(-counts, kind="stable")[:10].tolist())

    # The evaluate job ranks with the version, against the held-out split again.
    metrics = evaluate(api, job, "ratings")
    assert metrics["recall_at_10"] == pytest.approx(recall)
    assert metrics["ndcg_at_10"] == pytest.approx(outputs["ndcg_at_10"])


def test_bad_params_are_refused_naming_the_field(api: httpx.Client) -> None:
    cases = [
        ({"learning_rate": -0.5}, "params.learning_rate"),
        ({"factors": 0}, "params.factors"),
        ({"test_fraction": 1.5}, "params.test_fraction"),
        ({"top_k": "ten"}, "params.top_k"),
        ({"loss": "bce"}, "params.loss"),
    ]
    for params, field in cases:
        assert field in bad_params(api, ENTRY, params), params
