"""What ``rl.ppo``'s entry and its PPO loop share, free of torch: params, environments, play.

``rl`` (the catalogue entry, imported on listing) and ``_ppo`` (the loop, imported
only inside the job's process) both build on this module, so neither imports the other.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

if TYPE_CHECKING:
    import numpy as np

ENVIRONMENTS = ("CartPole-v1", "Acrobot-v1")
DEFAULT_ENV = "CartPole-v1"


class PpoParams(BaseModel):
    """``rl.ppo``."""

    model_config = ConfigDict(extra="forbid")

    env: Literal["CartPole-v1", "Acrobot-v1"] | None = Field(
        default=None, description="default: the dataset's env_id, else CartPole-v1"
    )
    iterations: int = Field(default=40, ge=1, le=100_000)
    num_envs: int = Field(default=8, ge=1, le=256, description="environments stepped together")
    rollout_steps: int = Field(default=128, ge=4, le=8192, description="steps per environment")
    update_epochs: int = Field(default=4, ge=1, le=100)
    minibatch_size: int = Field(default=256, ge=1, le=65_536)
    learning_rate: float = Field(default=2.5e-3, gt=0, le=1)
    gamma: float = Field(default=0.99, gt=0, le=1)
    gae_lambda: float = Field(default=0.95, ge=0, le=1)
    clip: float = Field(default=0.2, gt=0, lt=1)
    entropy_coef: float = Field(default=0.0, ge=0, le=1)
    value_coef: float = Field(default=0.5, ge=0, le=10)
    hidden: int = Field(default=64, ge=1, le=4096)
    eval_every: int = Field(default=5, ge=1, le=100_000)
    eval_episodes: int = Field(default=10, ge=1, le=1000)
    target_return: float | None = Field(
        default=None, description="stop once an evaluation's mean return reaches it"
    )
    seed: int = Field(default=0, ge=0)
    model_name: str | None = Field(
        default=None, min_length=1, max_length=256, description="default: <env>-ppo"
    )
    sleep_s: float = Field(default=0.0, ge=0, le=60, description="pause after each iteration")


def environment_of(frame: Any, chosen: str | None) -> str:
    """The environment to run: ``chosen``, else the dataset's ``env_id``, else the default."""
    env_id = chosen
    if env_id is None and frame is not None and "env_id" in frame.columns and len(frame):
        env_id = str(frame["env_id"].iloc[0])
    env_id = env_id or DEFAULT_ENV
    if env_id not in ENVIRONMENTS:
        raise ValueError(f"environment {env_id!r} is not one of {', '.join(ENVIRONMENTS)}")
    return env_id


def play(
    env_id: str, act: Callable[[np.ndarray[Any, Any]], Any], episodes: int, seed: int
) -> np.ndarray[Any, Any]:
    """Play ``episodes`` seeded episodes at once with policy ``act``; each one's return."""
    import gymnasium as gym
    import numpy as np

    envs = gym.make_vec(env_id, num_envs=episodes, vectorization_mode="sync")
    observation, _ = envs.reset(seed=seed)
    returns = np.zeros(episodes)
    running = np.ones(episodes, dtype=bool)
    while running.any():
        actions = np.asarray(act(observation.astype(np.float32))).reshape(-1)
        observation, reward, terminated, truncated, _ = envs.step(actions)
        returns += np.where(running, reward, 0.0)
        running &= ~(terminated | truncated)
    envs.close()
    return returns
