"""End to end: a served model's traffic is logged, and a shifted feature raises a drift event.

One server for the module (SQLite): a logistic regression on three features, its
training set uploaded as a dataset version named in the version's
``training_dataset`` tag, prediction logging at 100 %, and the drift watcher
ticking every half second over a short window.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import httpx
import numpy as np
import pandas as pd
import pytest

import aimass
from aimass.config import Settings
from conftest import LiveServer, free_port, start_server

FEATURES = ["tenure", "spend", "visits"]
WAIT_S = 60.0


def _rows(rng: np.random.Generator, n: int, shift: float = 0.0) -> pd.DataFrame:
    frame = pd.DataFrame({f: rng.normal(0.0, 1.0, n) for f in FEATURES})
    frame["spend"] += shift
    return frame


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LiveServer, aimass.Client]]:
    from sklearn.linear_model import LogisticRegression

    tmp = tmp_path_factory.mktemp("drift")
    settings = Settings(
        home=tmp / "home",
        database_url=f"sqlite:///{tmp / 'aimass.db'}",
        artifacts=str(tmp / "artifacts"),
        port=free_port(),
        tune_gc=False,
        jobs=False,
        prediction_log_sample=1.0,
        prediction_log_flush_s=0.2,
        drift_interval_s=0.5,
        drift_window_s=3.0,
        drift_min_rows=150,
    )
    for server in start_server(settings):
        with aimass.Client(url=server.url, token=server.admin_token) as client:
            rng = np.random.default_rng(5)
            train = _rows(rng, 2000)
            train["target"] = (train["tenure"] + train["visits"] > 0).astype(int)
            path = tmp / "train.csv"
            train.to_csv(path, index=False)
            data = client.datasets.upload("churn-train", path)
            model = LogisticRegression().fit(train[FEATURES].to_numpy(), train["target"])
            version = client.models.log(
                "churn",
                model,
                example=train[FEATURES].to_numpy()[:2],
                tags={"training_dataset": f"churn-train:{data.version}"},
            )
            client.deployments.create("churn", version=version.version)
            client.deployments.wait_ready("churn")
            yield server, client


def _send(server: LiveServer, frame: pd.DataFrame, batch: int = 20) -> int:
    answered = 0
    with httpx.Client(
        base_url=server.url, headers={"Authorization": f"Bearer {server.admin_token}"}
    ) as http:
        for start in range(0, len(frame), batch):
            rows = frame.iloc[start : start + batch].to_numpy().tolist()
            reply = http.post("/api/v1/deployments/churn/predict", json={"inputs": rows})
            assert reply.status_code == 200, reply.text
            answered += len(rows)
    return answered


def test_logged_predictions_can_be_queried_sampled_and_exported(
    served: tuple[LiveServer, aimass.Client],
) -> None:
    server, client = served
    since = datetime.now(UTC) - timedelta(seconds=1)
    sent = _send(server, _rows(np.random.default_rng(1), 100), batch=10)
    deadline = time.monotonic() + WAIT_S
    while client.monitoring.predictions("churn", start=since).total < sent:
        assert time.monotonic() < deadline, "the logged rows never reached the store"
        time.sleep(0.2)
    page = client.monitoring.predictions("churn", start=since, limit=5)
    assert page.total == sent and len(page.records) == 5
    record = page.records[0]
    assert record.version == 1 and record.model == "churn" and record.latency_ms > 0
    assert set(record.inputs) == {"input_0", "input_1", "input_2"}
    assert record.outputs["prediction"] in (0, 1)
    sample = client.monitoring.predictions("churn", start=since, sample=7, seed=3)
    assert len(sample.records) == 7 and sample.total == sent
    exported = client.monitoring.export("churn", "churn-logged", start=since)
    assert exported.num_rows == sent
    assert "prediction" in [c.name for c in exported.columns]
    metrics = httpx.get(
        f"{server.url}/metrics", headers={"Authorization": f"Bearer {server.admin_token}"}
    ).text
    assert "aimass_prediction_log_dropped_total 0.0" in metrics
    assert "aimass_prediction_log_queue_depth" in metrics


def test_feedback_by_request_id_gives_live_quality_per_version(
    served: tuple[LiveServer, aimass.Client],
) -> None:
    _, client = served
    page = client.monitoring.predictions("churn", limit=10_000)
    truth = [
        {
            "request_id": r.request_id,
            "row": r.row,
            "label": int(r.inputs["input_0"] + r.inputs["input_2"] > 0),
        }
        for r in page.records
    ]
    assert client.monitoring.feedback("churn", truth).stored == len(truth)
    report = client.monitoring.quality("churn")
    (live,) = report.versions
    assert live.version == 1 and live.task == "classification"
    assert live.labelled_rows == len(truth)
    assert live.metrics["accuracy"] > 0.9
    with pytest.raises(aimass.errors.InvalidInput):
        client.monitoring.feedback("churn", [])


def test_shifting_one_feature_raises_a_drift_event_for_it_only(
    served: tuple[LiveServer, aimass.Client],
) -> None:
    server, client = served
    rng = np.random.default_rng(2)
    _send(server, _rows(rng, 400))
    time.sleep(3.5)  # let the in-distribution rows fill a whole window first
    assert client.monitoring.events(kind="drift") == []
    deadline = time.monotonic() + WAIT_S
    while not client.monitoring.events(kind="drift"):
        assert time.monotonic() < deadline, "no drift event within the test's bound"
        _send(server, _rows(rng, 200, shift=0.5))
    events = client.monitoring.events(kind="drift")
    assert {e.details["feature"] for e in events} == {"spend"}
    assert events[0].subject == "churn" and "spend" in events[0].message
    report = client.monitoring.drift("churn", window_s=2.0)
    assert "spend" in report.drifted and "tenure" not in report.drifted


def test_the_cli_shows_logged_predictions_drift_and_events(
    served: tuple[LiveServer, aimass.Client],
) -> None:
    from tests.cli.test_models import CliRunnerCall

    server, _ = served
    cli = CliRunnerCall(server)
    out, _ = cli("monitoring", "predictions", "churn", "--limit", "3")
    assert "logged rows" in out
    out, _ = cli("monitoring", "events", "--kind", "drift")
    assert "spend" in out
    out, _ = cli("monitoring", "drift", "churn", "--window", "30")
    assert "spend" in out and "drifted: spend" in out
    out, _ = cli("monitoring", "nodes")
    assert "up" in out
    out, _ = cli("monitoring", "alerts")  # no rules on this server: the tables' headers
    assert "condition" in out and "status" in out
    _, err = cli("monitoring", "drift", "churn", "--reference", "nope", code=2)
    assert "NAME:VERSION" in err
