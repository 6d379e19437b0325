"""``rl.ppo``: proximal policy optimization on a Gymnasium control environment (CartPole).

Each iteration collects ``rollout_steps`` steps from ``num_envs`` copies of the environment,
then updates an actor-critic MLP with PPO's clipped objective (GAE advantages). Every
iteration logs ``episode_return`` (of the episodes finished in it) and the losses, and
checkpoints the state; every ``eval_every`` iterations the greedy policy plays
``eval_episodes`` seeded episodes and ``mean_return`` is logged. The best evaluated policy is
registered as ONNX: ``observation`` FP32 ``[-1, obs]`` -> ``action`` INT64 ``[-1]`` and
``probabilities`` FP32 ``[-1, actions]`` (the policy's).

The environment is the job's dataset (a built-in ``cartpole`` or ``acrobot``: one row naming
``env_id``) unless ``env`` names one; only the listed classic-control environments run, so a
dataset cannot make the job import arbitrary code through Gymnasium's ``module:Env`` ids.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aimass.plugins.entries import BuiltinDataset, Entry
from aimass.zoo._extras import RL, RL_DATA
from aimass.zoo._rl_spec import (
    DEFAULT_ENV,
    ENVIRONMENTS,
    PpoParams,
    environment_of,
    play,
)

if TYPE_CHECKING:
    import numpy as np

    from aimass.evaluation import EvaluationReport
    from aimass.flavors.base import Predictor
    from aimass.registry.entities import ModelVersion
    from aimass.runtime import JobContext

__all__ = [
    "DATASETS",
    "DEFAULT_ENV",
    "ENTRIES",
    "ENVIRONMENTS",
    "EVALUATION_EPISODES",
    "PpoParams",
    "environment_of",
    "evaluate",
    "play",
    "train",
]

#: Episodes the ``evaluate`` job plays.
EVALUATION_EPISODES = 10

_OBSERVATION = [0.01, -0.02, 0.03, 0.04]
ENTRIES = [
    Entry(
        name="rl.ppo",
        kinds=frozenset({"train"}),
        target="aimass.zoo.rl:train",
        description=(
            "Proximal policy optimization (actor-critic MLP, GAE) on a Gymnasium environment "
            "(CartPole-v1 by default); logs episode returns and losses per iteration, "
            "checkpoints and resumes; exports the greedy policy to ONNX (observation -> action)."
        ),
        params=PpoParams,
        task="reinforcement_learning",
        family="rl",
        default_dataset="cartpole",
        exports=("onnx",),
        needs=RL,
        signature={
            "inputs": [{"name": "observation", "datatype": "FP32", "shape": [-1, -1]}],
            "outputs": [
                {"name": "action", "datatype": "INT64", "shape": [-1]},
                {"name": "probabilities", "datatype": "FP32", "shape": [-1, -1]},
            ],
        },
        example_request={
            "inputs": [
                {"name": "observation", "datatype": "FP32", "shape": [1, 4], "data": _OBSERVATION}
            ]
        },
        evaluate="aimass.zoo.rl:evaluate",
    )
]


def _environment(env_id: str) -> Callable[[Path], Path]:
    def build(folder: Path) -> Path:
        import gymnasium as gym
        import pandas as pd

        spec, env = gym.spec(env_id), gym.make(env_id)
        space: Any = env.observation_space
        choices: Any = env.action_space
        row = {
            "env_id": env_id,
            "max_episode_steps": spec.max_episode_steps,
            "reward_threshold": spec.reward_threshold,
            "observation_size": int(space.shape[0]),
            "actions": int(choices.n),
        }
        env.close()
        path = folder / f"{env_id.split('-')[0].lower()}.csv"
        pd.DataFrame([row]).to_csv(path, index=False)
        return path

    return build


DATASETS = [
    BuiltinDataset(
        "cartpole",
        "Gymnasium's CartPole-v1 environment (balance a pole on a cart; +1 a step, 500 at "
        "most): one row naming the environment (env_id, max_episode_steps, reward_threshold, "
        "observation_size, actions) for the reinforcement-learning entries.",
        "reinforcement_learning",
        "cartpole.csv",
        _environment("CartPole-v1"),
        "environment: 4 observations, 2 actions",
        "gymnasium",
        RL_DATA,
    ),
    BuiltinDataset(
        "acrobot",
        "Gymnasium's Acrobot-v1 environment (swing a two-link arm up; -1 a step, 500 at "
        "most): one row naming the environment, as cartpole.",
        "reinforcement_learning",
        "acrobot.csv",
        _environment("Acrobot-v1"),
        "environment: 6 observations, 3 actions",
        "gymnasium",
        RL_DATA,
    ),
]


def train(raw: dict[str, Any]) -> dict[str, Any]:
    """Train with PPO, evaluate, checkpoint; register the best evaluated policy as ONNX."""
    from aimass import runtime
    from aimass.zoo._ppo import learn
    from aimass.zoo._torch import record_pid

    params = PpoParams.model_validate(raw)
    ctx = runtime.context()
    record_pid(ctx)
    frame = ctx.load_dataset() if ctx.dataset is not None else None
    env_id = environment_of(frame, params.env)
    ctx.log_params({**params.model_dump(mode="json"), "env": env_id})
    result = learn(ctx, params, env_id)
    name = params.model_name or f"{env_id.split('-')[0].lower()}-ppo"
    metrics = {"mean_return": result.mean_return, "train_seconds": result.seconds}
    version = ctx.register_model(
        name,
        result.onnx_path,
        metrics=metrics,
        tags={"task": "reinforcement_learning", "entry": "rl.ppo", "env": env_id},
        description=f"rl.ppo on {env_id}: best of iteration {result.best_iteration}",
    )
    return {
        **metrics,
        "env": env_id,
        "iterations": result.iterations,
        "best_iteration": result.best_iteration,
        "resumed_from": result.resumed_from,
        "model": version.model,
        "model_version": version.version,
    }


def evaluate(
    ctx: JobContext, loaded: Predictor, version: ModelVersion, params: dict[str, Any]
) -> EvaluationReport:
    """The mean return of the served policy over seeded episodes of the dataset's environment."""

    from aimass.evaluation import EvaluationReport

    frame = ctx.load_dataset() if ctx.dataset is not None else None
    env_id = environment_of(frame, None if frame is not None else version.tags.get("env"))
    name = (loaded.signature.inputs[0].name if loaded.signature else None) or "observation"

    def act(observation: np.ndarray[Any, Any]) -> Any:
        return loaded.predict({name: observation})

    returns = play(env_id, act, EVALUATION_EPISODES, seed=10_000)
    return EvaluationReport.model_validate(
        {
            "task": "reinforcement_learning",
            "metrics": {
                "mean_return": float(returns.mean()),
                "std_return": float(returns.std()),
                "min_return": float(returns.min()),
                "max_return": float(returns.max()),
            },
            "details": {"env": env_id, "returns": [float(r) for r in returns]},
            "n_rows": len(returns),
        }
    )
