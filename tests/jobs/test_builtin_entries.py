"""Batch prediction and tuning jobs through the API, on the local executor."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import httpx
import pytest

from jobs.conftest import upload_iris, wait_for

pytestmark = pytest.mark.backend("sqlite")  # slow end to end: one backend (tests/conftest.py)


def _train(api: httpx.Client, **params: object) -> dict[str, object]:
    job = api.post(
        "/api/v1/jobs",
        json={
            "kind": "train",
            "entry": "sklearn.sgd_classifier",
            "dataset": "iris",
            "params": {"epochs": 3, **params},
        },
    ).json()
    done = wait_for(api, job["id"])
    assert done["state"] == "succeeded", done
    return done


def test_batch_prediction_writes_a_predictions_file_in_chunks(
    api: httpx.Client, tmp_path: Path
) -> None:
    upload_iris(api, tmp_path)
    _train(api, model_name="iris-batch")
    job = api.post(
        "/api/v1/jobs",
        json={
            "kind": "batch_predict",
            "entry": "batch_predict",
            "dataset": "iris",
            "params": {"model": "iris-batch", "target": "target", "chunk_rows": 40},
        },
    ).json()
    done = wait_for(api, job["id"])
    assert done["state"] == "succeeded", (done, api.get(f"/api/v1/jobs/{job['id']}/logs").text)
    progress = api.get(f"/api/v1/jobs/{job['id']}/metrics", params={"name": "progress"}).json()
    assert [round(p["value"], 3) for p in progress] == [0.267, 0.533, 0.8, 1.0]
    [artifact] = api.get(f"/api/v1/jobs/{job['id']}/artifacts").json()
    assert artifact["name"] == "predictions.csv"
    body = api.get(f"/api/v1/jobs/{job['id']}/artifacts/predictions.csv")
    assert body.headers["content-disposition"].startswith("attachment")
    rows = list(csv.DictReader(io.StringIO(body.text)))
    assert len(rows) == 150 and [int(r["row"]) for r in rows] == list(range(150))
    assert {r["prediction"] for r in rows} <= {"0", "1", "2"}


def test_tuning_runs_trials_as_child_jobs_and_registers_the_best(
    api: httpx.Client, tmp_path: Path
) -> None:
    upload_iris(api, tmp_path)
    job = api.post(
        "/api/v1/jobs",
        json={
            "kind": "tune",
            "entry": "tune",
            "dataset": "iris",
            "resources": {"cpu": 0.5},
            "params": {
                "space": {
                    "learning_rate": {"type": "float", "low": 0.001, "high": 0.5, "log": True}
                },
                "base_params": {"epochs": 3},
                "n_trials": 3,
                "parallelism": 2,
                "trial_cpu": 0.75,
                "model_name": "iris-tuned",
            },
        },
    ).json()
    done = wait_for(api, job["id"], timeout=90)
    assert done["state"] == "succeeded", done
    children = api.get("/api/v1/jobs", params={"parent_id": job["id"]}).json()
    assert len(children) == 3 and all(c["state"] == "succeeded" for c in children)
    trials = done["outputs"]["trials"]
    assert sorted(t["job_id"] for t in trials) == sorted(c["id"] for c in children)
    best = max(c["outputs"]["accuracy"] for c in children)
    assert done["outputs"]["best_value"] == best
    version = api.get("/api/v1/models/iris-tuned/versions/1").json()
    assert version["metrics"]["accuracy"] == best
    assert version["tags"]["best_trial_job"] == str(done["outputs"]["best_job_id"])
    assert version["lineage"]["job_id"] == str(job["id"])


def test_bad_tuning_space_is_refused(api: httpx.Client, tmp_path: Path) -> None:
    upload_iris(api, tmp_path)
    response = api.post(
        "/api/v1/jobs",
        json={
            "kind": "tune",
            "entry": "tune",
            "dataset": "iris",
            "params": {"space": {"alpha": {"type": "float", "low": 1, "high": 0}}},
        },
    )
    assert response.status_code == 422
    assert "params.space.alpha" in response.json()["error"]["message"]
