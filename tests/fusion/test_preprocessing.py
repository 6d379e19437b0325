"""Training/serving parity: a fitted preprocessing pipeline gives bitwise the same features.

The pipeline (imputation, outlier clipping, scaling, one-hot, text hashing,
date parts) is fitted on 10,000 training rows and uploaded as JSON (the
``preprocessing`` flavor); a classifier is fitted on its features. Served
alone, the pipeline's features for the same rows equal the training-time ones
bit for bit; served as a ``sequence`` (pipeline -> classifier), the answers
equal the training-time predictions.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pytest
from tests.conftest import LiveServer, free_port, start_server
from tests.fusion.models import run_onnx, to_onnx

from aimass.config import Settings
from aimass.errors import InvalidInput
from aimass.preprocessing import FittedPipeline, fit_pipeline

ROWS = 10_000
SPEC: list[dict[str, Any]] = [
    {"name": "age", "kind": "numeric", "impute": "median", "clip": [0.01, 0.99], "scale": True},
    {"name": "income", "kind": "numeric", "impute": "mean", "scale": True},
    {"name": "city", "kind": "category", "max_categories": 5},
    {"name": "note", "kind": "text", "buckets": 8},
    {"name": "seen", "kind": "date"},
]


def _table(seed: int = 0) -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(seed)
    age = rng.normal(40, 12, ROWS)
    age[rng.random(ROWS) < 0.05] = np.nan
    age[:20] = 1e6  # outliers, clipped
    income = rng.lognormal(10, 1, ROWS)
    income[rng.random(ROWS) < 0.05] = np.nan
    cities = np.array(["paris", "lyon", "nice", "lille", "brest", "metz", "pau"], dtype=object)
    city = cities[rng.integers(0, len(cities), ROWS)]
    city[rng.random(ROWS) < 0.03] = None
    words = np.array(["late", "paid", "new", "vip", "refund", "again"], dtype=object)
    note = np.array([" ".join(rng.choice(words, 3)) for _ in range(ROWS)], dtype=object)
    days = rng.integers(0, 3 * 365 * 24, ROWS).astype("timedelta64[h]")
    seen = (np.datetime64("2024-01-01T00") + days).astype(str).astype(object)
    table = pd.DataFrame({"age": age, "income": income, "city": city, "note": note, "seen": seen})
    logit = (np.nan_to_num(age, nan=40) - 40) / 12 + (city == "paris") - 0.5
    y = (logit + rng.normal(0, 1, ROWS) > 0).astype(np.int64)
    return table, y


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    home = tmp_path_factory.mktemp("prep")
    settings = Settings(
        home=home / "home", artifacts=str(home / "artifacts"), port=free_port(),
        tune_gc=False, jobs=False, reconcile_interval=0.1,
    )  # fmt: skip
    yield from start_server(settings)


def _column(name: str, values: np.ndarray) -> dict[str, Any]:
    if values.dtype == object:
        data = [None if v is None else str(v) for v in values]
        return {"name": name, "datatype": "BYTES", "shape": [len(values)], "data": data}
    data = [None if np.isnan(v) else float(v) for v in values]
    return {"name": name, "datatype": "FP64", "shape": [len(values)], "data": data}


def _infer(server: LiveServer, name: str, table: pd.DataFrame) -> dict[str, np.ndarray]:
    body = {"inputs": [_column(c, table[c].to_numpy()) for c in table.columns]}
    answer = httpx.post(
        f"{server.url}/v2/models/{name}/infer",
        json=body,
        headers={"Authorization": f"Bearer {server.admin_token}"},
        timeout=120,
    )
    assert answer.status_code == 200, answer.text
    return {
        o["name"]: np.asarray(
            o["data"], dtype=np.float64 if o["datatype"] == "FP64" else None
        ).reshape(o["shape"])
        for o in answer.json()["outputs"]
    }


def test_served_features_and_answers_equal_the_training_time_ones(
    server: LiveServer, tmp_path: Path
) -> None:
    from sklearn.linear_model import LogisticRegression

    import aimass

    table, y = _table()
    pipeline = FittedPipeline.from_json(fit_pipeline(table, SPEC).to_json())  # what is stored
    train_features = pipeline.transform(table)  # training time
    x32 = train_features.astype(np.float32)
    model = LogisticRegression(max_iter=1000).fit(x32, y)
    onnx_path = to_onnx(model, x32.shape[1], tmp_path / "clf.onnx")
    train_label, train_proba = run_onnx(onnx_path)(x32)
    prep_path = tmp_path / "customers.preprocessing.json"
    prep_path.write_text(pipeline.to_json())

    with aimass.Client(url=server.url, token=server.admin_token) as client:
        assert client.models.upload("prep", prep_path).flavor == "preprocessing"
        client.models.upload("clf", onnx_path)
        client.deployments.create("prep", version=1)
        client.deployments.create(
            "prep", name="scored", combiner="sequence",
            traffic=[{"version": 1}, {"model": "clf", "version": 1}],
        )  # fmt: skip
        client.deployments.wait_ready("prep", timeout=60)
        client.deployments.wait_ready("scored", timeout=60)
    served = _infer(server, "prep", table)["features"]
    answer = _infer(server, "scored", table)

    assert served.shape == (ROWS, len(pipeline.feature_names())) == train_features.shape
    assert served.tobytes() == train_features.tobytes()  # bitwise, NaN-free
    assert not np.isnan(served).any()
    assert (answer["predict"] == train_label).all()
    np.testing.assert_array_equal(answer["predict_proba"].astype(np.float32), train_proba)


def test_a_pipeline_fits_only_columns_the_table_has() -> None:
    table, _ = _table()

    with pytest.raises(InvalidInput, match="no column 'zip'"):
        fit_pipeline(table, [{"name": "zip", "kind": "numeric"}])
