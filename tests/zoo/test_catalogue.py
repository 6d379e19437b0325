"""The model library's catalogue and built-in datasets: API, SDK, CLI, and materializing."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import httpx
import pytest
from tests.cli.test_models import CliRunnerCall

from aimass import Client
from aimass.artifacts.store import ArtifactStore
from aimass.config import Settings
from aimass.datasets.builtin import ensure_builtin
from aimass.datasets.entities import DatasetVersion
from aimass.store.db import Database
from aimass.zoo.families import builtin_datasets, zoo_entries
from conftest import LiveServer, db_url  # noqa: F401  (both backends: materializing is a race)
from jobs.conftest import wait_for

pytestmark = pytest.mark.backend("sqlite")  # slow end to end: one backend (tests/conftest.py)

SKLEARN_SETS = {"iris", "wine", "breast_cancer", "digits", "diabetes"}


def test_every_entry_is_fully_described() -> None:
    for entry in zoo_entries():
        assert entry.family and entry.task, entry.name
        assert entry.name.startswith(f"{entry.family}."), entry.name
        assert entry.default_dataset in builtin_datasets(), entry.name
        assert entry.exports and entry.signature and entry.example_request, entry.name
        assert entry.params is not None and entry.params.model_config.get("extra") == "forbid"
        assert entry.params().model_dump(), "every param has a default"


def test_the_catalogue_lists_entries_with_params_and_examples(api: httpx.Client) -> None:
    listed = api.get("/api/v1/zoo").json()
    names = [e["name"] for e in listed]
    assert {"classical.logistic_regression", "nlp.tfidf_linear"} <= set(names)
    assert "noop" not in names, "plain entries are not in the library"
    entry = api.get("/api/v1/zoo/classical.logistic_regression").json()
    assert entry["task"] == "classification" and entry["default_dataset"] == "iris"
    assert entry["exports"] == ["onnx"]
    params = {p["name"]: p for p in entry["params"]}
    assert params["C"] == {
        "name": "C",
        "type": "number",
        "default": 1.0,
        "required": False,
        "constraints": ["> 0", "<= 1e+06"],
        "description": "inverse regularization strength",
    }
    assert params["max_iter"]["type"] == "integer"
    assert entry["train_command"] == (
        "aimass jobs submit classical.logistic_regression --dataset iris -f"
    )
    assert entry["example_request"]["inputs"][0]["shape"] == [1, 4]
    missing = api.get("/api/v1/zoo/classical.nothing")
    assert missing.status_code == 404 and "classical.ridge" in missing.text


def test_builtin_datasets_are_listed_and_made_on_first_use(api: httpx.Client) -> None:
    listed = {d["name"]: d for d in api.get("/api/v1/zoo/datasets").json()}
    assert SKLEARN_SETS | {"text_topics"} <= set(listed)
    assert listed["iris"]["task"] == "classification" and listed["iris"]["version"] is None
    assert listed["diabetes"]["size"].startswith("442 rows")
    made = api.post("/api/v1/zoo/datasets/wine")
    assert made.status_code == 201, made.text
    assert made.json()["version"] == 1 and made.json()["num_rows"] == 178
    assert api.post("/api/v1/zoo/datasets/wine").json()["id"] == made.json()["id"]
    assert api.get("/api/v1/zoo/datasets").json()[-1]["name"] == "wine"
    unknown = api.post("/api/v1/zoo/datasets/imagenet")
    assert unknown.status_code == 404 and "iris" in unknown.text

    # A job naming no dataset runs on its entry's default, made on first use.
    job = api.post(
        "/api/v1/jobs",
        json={"kind": "train", "entry": "classical.ridge", "params": {}},
    )
    assert job.status_code == 201, job.text
    assert job.json()["dataset"] == "diabetes"
    assert wait_for(api, job.json()["id"])["state"] == "succeeded"
    versions = api.get("/api/v1/datasets/diabetes/versions").json()
    assert [(v["version"], v["num_rows"]) for v in versions] == [(1, 442)]
    assert [c["name"] for c in versions[0]["columns"]][-1] == "target"


def test_materializing_is_idempotent_under_concurrent_callers(
    settings: Settings, tmp_path: Path
) -> None:
    db = Database(settings.database_url)
    store = ArtifactStore(str(tmp_path / "artifacts"))
    results: list[DatasetVersion] = []
    errors: list[BaseException] = []

    def make() -> None:
        try:
            results.append(ensure_builtin(db, store, "default", "iris", tmp_path))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=make) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    db.close()
    assert not errors, errors
    assert {(r.id, r.version) for r in results} == {(results[0].id, 1)}
    stored = [p for p in (tmp_path / "artifacts").rglob("*") if p.is_file()]
    assert len(stored) == 1, "the losers' bytes are deleted"


def test_sdk_lists_entries_and_trains_one(jobs_server: LiveServer) -> None:
    with Client(url=jobs_server.url, token=jobs_server.admin_token) as client:
        entries = {e.name: e for e in client.zoo.list()}
        assert entries["classical.kmeans"].task == "clustering"
        entry = client.zoo.get("nlp.tfidf_linear")
        assert entry.default_dataset == "text_topics"
        assert [p.name for p in entry.params][:2] == ["text", "target"]
        job = client.zoo.train("classical.logistic_regression", params={"C": 2.0})
        assert job.dataset == "iris" and job.params["C"] == 2.0
        done = client.jobs.wait(job.id, timeout=60)
        assert done.state == "succeeded", client.jobs.logs(job.id)
        assert done.outputs["accuracy"] >= 0.9
        assert {d.name: d.version for d in client.zoo.datasets()}["iris"] == 1


def test_cli_lists_and_shows_entries_and_builtin_datasets(jobs_server: LiveServer) -> None:
    aimass = CliRunnerCall(jobs_server)
    table, _ = aimass("zoo", "list")
    assert "classical.hist_gradient_boosting" in table and "breast_cancer" in table
    listed = json.loads(aimass("zoo", "list", "--json")[0])
    assert {e["name"] for e in listed} == {e.name for e in zoo_entries()}
    shown, _ = aimass("zoo", "show", "classical.random_forest")
    assert "n_estimators" in shown and "aimass jobs submit classical.random_forest" in shown
    assert '"datatype": "FP32"' in shown
    _, err = aimass("zoo", "show", "nope", code=1)
    assert err.startswith("error: no model-library entry 'nope'")
    datasets, _ = aimass("datasets", "builtin")
    assert "breast_cancer" in datasets and "text_topics" in datasets
    made, _ = aimass("datasets", "builtin", "--materialize", "digits")
    assert made.strip() == "digits v1: 1797 rows"
    listed = {d["name"]: d for d in json.loads(aimass("datasets", "builtin", "--json")[0])}
    assert listed["digits"]["version"] == 1 and listed["wine"]["version"] is None
