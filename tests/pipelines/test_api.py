"""Pipelines end to end through a live server: SDK, REST refusals and the CLI.

The first test runs the issue's example for real: train an SGD classifier on
iris, evaluate it, and move ``production`` only when the new F1 beats the old.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from tests.cli.test_models import CliRunnerCall
from tests.conftest import LiveServer, start_server

import aimass
from aimass.config import Settings
from aimass.errors import NotFound, Unprocessable
from jobs.conftest import job_settings, upload_iris

pytestmark = pytest.mark.backend("postgresql")  # slow end to end: one backend (tests/conftest.py)

PROMOTE_IF_BETTER: dict[str, Any] = {
    "name": "promote-if-better",
    "description": "train, evaluate, and move production when the F1 beats it",
    "steps": [
        {
            "name": "train",
            "job": {
                "kind": "train",
                "entry": "sklearn.sgd_classifier",
                "dataset": "iris",
                "params": {"epochs": 3, "model_name": "iris-sgd"},
            },
        },
        {
            "name": "evaluate",
            "needs": ["train"],
            "job": {
                "kind": "evaluate",
                "entry": "evaluate",
                "dataset": "iris",
                "params": {"model": {"from": "steps.train.outputs.model"}},
            },
        },
        {
            "name": "promote",
            "needs": ["evaluate"],
            "when": {
                "left": "steps.evaluate.outputs.metrics.f1",
                "op": ">",
                "right": {
                    "alias_metric": {
                        "model": "iris-sgd",
                        "alias": "production",
                        "metric": "f1",
                        "default": 0,
                    }
                },
            },
            "action": {
                "kind": "set_alias",
                "model": "iris-sgd",
                "alias": "production",
                "version_from": "steps.train.outputs.model_version",
            },
        },
    ],
}
SLEEPER = {
    "name": "sleeper",
    "steps": [
        {"name": "nap", "job": {"kind": "train", "entry": "noop", "params": {"sleep_s": 60}}},
        {"name": "after", "needs": ["nap"], "job": {"kind": "train", "entry": "noop"}},
    ],
}


@pytest.fixture
def live_server(settings: Settings) -> Iterator[LiveServer]:
    """A live server that runs jobs (two CPU slots), so pipeline steps really run.

    The root ``client`` and ``http`` fixtures talk to it.
    """
    yield from start_server(job_settings(settings))


def test_train_evaluate_promote_runs_for_real(
    client: aimass.Client, http: httpx.Client, tmp_path: Path
) -> None:
    upload_iris(http, tmp_path)
    pipeline = client.pipelines.apply(PROMOTE_IF_BETTER)
    assert [s.name for s in pipeline.steps] == ["train", "evaluate", "promote"]
    first = client.pipelines.wait_run(client.pipelines.run(pipeline.name).id, timeout=180)
    assert first.state == "succeeded", first
    steps = {s.name: s for s in first.steps}
    assert steps["promote"].state == "succeeded"
    assert steps["promote"].reason is not None
    assert steps["promote"].reason.startswith("condition true: ")
    assert steps["promote"].reason.endswith(" > 0.0")
    version = steps["train"].outputs["model_version"]
    assert client.models.get("iris-sgd").aliases["production"] == version
    evaluated = client.jobs.get(steps["evaluate"].job_id or 0)
    assert evaluated.params["model"] == "iris-sgd"  # filled in from the train step
    # The same seed trains the same model: its F1 does not beat production's, so no move.
    second = client.pipelines.wait_run(client.pipelines.run(pipeline.name).id, timeout=180)
    assert second.state == "succeeded", second
    promote = {s.name: s for s in second.steps}["promote"]
    assert promote.state == "skipped", promote
    assert client.models.get("iris-sgd").aliases["production"] == version
    assert [r.id for r in client.pipelines.runs(pipeline.name)] == [second.id, first.id]


def test_refusals_name_what_is_wrong(client: aimass.Client, http: httpx.Client) -> None:
    cyclic = {
        "name": "loop",
        "steps": [
            {"name": "a", "needs": ["b"], "job": {"kind": "train", "entry": "noop"}},
            {"name": "b", "needs": ["a"], "job": {"kind": "train", "entry": "noop"}},
        ],
    }
    answer = http.post("/api/v1/pipelines", json=cyclic)
    assert answer.status_code == 422
    assert answer.json()["error"]["message"] == "steps: the dependencies form a cycle: a -> b -> a"
    with pytest.raises(Unprocessable, match="unknown entry 'nope'"):
        client.pipelines.apply(
            {"name": "x", "steps": [{"name": "a", "job": {"kind": "train", "entry": "nope"}}]}
        )
    with pytest.raises(NotFound):
        client.pipelines.get_run(999)
    with pytest.raises(NotFound):
        client.pipelines.run("ghost")
    assert client.pipelines.list() == []


def test_cancelling_a_run_stops_its_job(client: aimass.Client) -> None:
    client.pipelines.apply(SLEEPER)
    run = client.pipelines.run("sleeper")
    for seen in client.pipelines.watch_run(run.id, timeout=60):
        if seen.steps[0].state == "running":
            break
    cancelled = client.pipelines.cancel_run(run.id)
    assert cancelled.state == "cancelled"
    assert [s.state for s in cancelled.steps] == ["cancelled", "cancelled"]
    job = client.jobs.wait(cancelled.steps[0].job_id or 0, timeout=30)
    assert job.state == "cancelled"
    assert client.pipelines.cancel_run(run.id).state == "cancelled"  # asked twice: the same
    client.pipelines.delete("sleeper")
    assert client.pipelines.list() == []


@pytest.fixture
def aimass_cli(live_server: LiveServer) -> CliRunnerCall:
    return CliRunnerCall(live_server)


def test_cli_applies_runs_and_watches_a_pipeline(aimass_cli: CliRunnerCall, tmp_path: Path) -> None:
    spec = {
        "name": "quick",
        "steps": [
            {"name": "one", "job": {"kind": "train", "entry": "noop"}},
            {"name": "two", "needs": ["one"], "job": {"kind": "train", "entry": "noop"}},
            {
                "name": "never",
                "needs": ["two"],
                "when": {"left": 1, "op": ">", "right": 2},
                "job": {"kind": "train", "entry": "noop"},
            },
        ],
    }
    path = tmp_path / "quick.json"
    path.write_text(json.dumps(spec))
    out, _ = aimass_cli("pipelines", "apply", str(path))
    assert "created pipeline quick: one -> two -> never" in out
    out, _ = aimass_cli("pipelines", "apply", str(path))
    assert "replaced (revision 2)" in out
    out, err = aimass_cli("pipelines", "run", "quick", "-f", "--timeout", "60")
    assert "one: running" in out and "two: succeeded" in out
    assert "never: skipped: condition false: 1 > 2" in out
    assert "succeeded" in err.splitlines()[-1]
    runs = json.loads(aimass_cli("pipelines", "runs", "quick", "--json")[0])
    assert [r["state"] for r in runs] == ["succeeded"]
    shown, _ = aimass_cli("pipelines", "show-run", str(runs[0]["id"]))
    assert "never" in shown and "skipped" in shown
    listed, _ = aimass_cli("pipelines", "list")
    assert "quick" in listed
    _, err = aimass_cli("pipelines", "cancel-run", str(runs[0]["id"]), code=1)
    assert err.startswith("error: pipeline run") and "already succeeded" in err
    bad = tmp_path / "bad.json"
    bad.write_text("[1]")
    _, err = aimass_cli("pipelines", "apply", str(bad), code=1)
    assert "expected a JSON object" in err
