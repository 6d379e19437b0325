"""``rl.ppo``: PPO balances Gymnasium's CartPole through a job, the policy is served as ONNX
(observations in, actions out) and the ``evaluate`` job plays episodes with the served policy."""

from __future__ import annotations

from typing import Any

import httpx
import numpy as np
import pytest

from zoo.conftest import bad_params, evaluate, infer, serve, train
from zoo.torch_jobs import kill_mid_training

pytestmark = pytest.mark.torch


@pytest.fixture(autouse=True)
def _rl_family(monkeypatch: pytest.MonkeyPatch) -> None:
    """List the RL family in the catalogue and the built-in datasets if it is not yet."""
    import aimass.zoo.families
    from aimass.zoo import rl

    if rl not in aimass.zoo.families.FAMILIES:
        monkeypatch.setattr(aimass.zoo.families, "FAMILIES", (*aimass.zoo.families.FAMILIES, rl))


def _metric(api: httpx.Client, job_id: int, name: str) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = api.get(
        f"/api/v1/jobs/{job_id}/metrics", params={"name": name}
    ).json()
    return found


def test_ppo_balances_the_cartpole_serves_actions_and_is_evaluated(api: httpx.Client) -> None:
    job = train(api, "rl.ppo", {"iterations": 30, "target_return": 475})
    outputs = job["outputs"]
    assert job["dataset"] == "cartpole"
    assert outputs["env"] == "CartPole-v1"
    assert outputs["mean_return"] >= 150, outputs
    iterations = outputs["iterations"]
    returns = _metric(api, job["id"], "episode_return")
    assert [m["step"] for m in returns] == list(range(1, iterations + 1))
    assert [m["step"] for m in _metric(api, job["id"], "loss")] == list(range(1, iterations + 1))
    assert len(api.get(f"/api/v1/jobs/{job['id']}/checkpoints").json()) == iterations
    version = api.get(f"/api/v1/models/{outputs['model']}/versions/{outputs['model_version']}")
    body = version.json()
    assert body["flavor"] == "onnx"
    assert body["tags"]["env"] == "CartPole-v1"
    assert body["metrics"]["mean_return"] == outputs["mean_return"]

    name = serve(api, job, "cartpole")
    observations = np.random.default_rng(0).normal(0, 0.05, size=(5, 4)).astype(np.float32)
    answer = infer(
        api,
        name,
        [
            {
                "name": "observation",
                "datatype": "FP32",
                "shape": [5, 4],
                "data": observations.ravel().tolist(),
            }
        ],
    )
    assert answer["action"]["shape"] == [5]
    assert answer["action"]["datatype"] == "INT64"
    assert set(answer["action"]["data"]) <= {0, 1}
    assert answer["probabilities"]["shape"] == [5, 2]
    # A pole leaning hard to one side is pushed back from that side.
    leaning = [0.0, 0.0, 0.15, 0.5, 0.0, 0.0, -0.15, -0.5]
    pushes = infer(
        api, name, [{"name": "observation", "datatype": "FP32", "shape": [2, 4], "data": leaning}]
    )
    assert pushes["action"]["data"] == [1, 0]

    assert evaluate(api, job, "cartpole")["mean_return"] >= 150


def test_a_killed_ppo_job_resumes_from_its_last_checkpoint(api: httpx.Client) -> None:
    params = {"iterations": 8, "eval_every": 4, "sleep_s": 0.3}
    response = api.post("/api/v1/jobs", json={"kind": "train", "entry": "rl.ppo", "params": params})
    assert response.status_code == 201, response.text
    done = kill_mid_training(api, response.json()["id"], after_epochs=3)
    assert done["state"] == "succeeded", done
    assert done["outputs"]["resumed_from"] >= 3
    assert done["outputs"]["iterations"] == 8
    steps = [m["step"] for m in _metric(api, done["id"], "loss")]
    assert sorted(set(steps)) == list(range(1, 9))


def test_bad_params_are_refused_naming_the_field(api: httpx.Client) -> None:
    cases = [
        ({"learning_rate": -1}, "params.learning_rate"),
        ({"env": "LunarLander-v3"}, "params.env"),
        ({"iterations": "lots"}, "params.iterations"),
        ({"epsilon": 0.1}, "params.epsilon"),
    ]
    for params, field in cases:
        assert field in bad_params(api, "rl.ppo", params)
