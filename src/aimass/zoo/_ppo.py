"""The PPO loop of ``rl.ppo``: rollouts, GAE, clipped updates, evaluation, checkpoints, export.

It runs on the CPU even when the job has a GPU: stepping the environments dominates, and a
64-unit MLP gains nothing from a device round trip per step.
"""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import Tensor, nn

from aimass.zoo._rl_spec import play
from aimass.zoo._torch import dump_state, load_state, setup

if TYPE_CHECKING:
    from aimass.runtime import JobContext
    from aimass.zoo._rl_spec import PpoParams


@dataclass(frozen=True)
class Learned:
    """What a run produced: the best policy's file and return, and how the run went."""

    onnx_path: Path
    mean_return: float
    best_iteration: int
    iterations: int
    resumed_from: int
    seconds: float


def _mlp(inputs: int, hidden: int, outputs: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Linear(inputs, hidden),
        nn.Tanh(),
        nn.Linear(hidden, hidden),
        nn.Tanh(),
        nn.Linear(hidden, outputs),
    )


class ActorCritic(nn.Module):
    """The policy (action logits) and the value function, two MLPs."""

    def __init__(self, observations: int, actions: int, hidden: int) -> None:
        super().__init__()
        self.policy = _mlp(observations, hidden, actions)
        self.value = _mlp(observations, hidden, 1)


class GreedyPolicy(nn.Module):
    """What is served: observation -> (the most likely action, the policy's probabilities)."""

    def __init__(self, policy: nn.Module) -> None:
        super().__init__()
        self.policy = policy

    def forward(self, observation: Tensor) -> tuple[Tensor, Tensor]:
        probabilities = torch.softmax(self.policy(observation), dim=-1)
        return probabilities.argmax(dim=-1), probabilities


def _export(policy: nn.Module, observations: int, path: Path) -> Path:
    served = GreedyPolicy(policy).eval()
    example = torch.zeros(2, observations)
    with warnings.catch_warnings():
        # The legacy exporter is chosen on purpose: it exports this small MLP in one step.
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.onnx.export(
            served,
            (example,),
            str(path),
            input_names=["observation"],
            output_names=["action", "probabilities"],
            dynamic_axes={"observation": {0: "n"}, "action": {0: "n"}, "probabilities": {0: "n"}},
            opset_version=17,
            dynamo=False,
        )
    _check_export(served, path, observations)
    return path


def _check_export(served: nn.Module, path: Path, observations: int) -> None:
    """The ONNX graph must choose the actions the torch policy chooses."""
    import onnxruntime

    sample = np.random.default_rng(0).normal(size=(64, observations)).astype(np.float32)
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    action, probabilities = session.run(None, {"observation": sample})
    with torch.no_grad():
        expected_action, expected = served(torch.from_numpy(sample))
    if not np.allclose(probabilities, expected.numpy(), atol=1e-4) or not np.array_equal(
        action, expected_action.numpy()
    ):
        raise RuntimeError("the exported ONNX policy disagrees with the trained one")


def _greedy(model: ActorCritic) -> Any:
    def act(observation: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
        with torch.no_grad():
            chosen: np.ndarray[Any, Any] = (
                model.policy(torch.from_numpy(observation)).argmax(-1).numpy()
            )
            return chosen

    return act


def learn(ctx: JobContext, params: PpoParams, env_id: str) -> Learned:
    """Resume or start, run the iterations, and export the best evaluated policy."""
    import gymnasium as gym
    from gymnasium.vector import AutoresetMode

    setup(params.seed)
    envs: Any = gym.make_vec(
        env_id,
        num_envs=params.num_envs,
        vectorization_mode="sync",
        vector_kwargs={"autoreset_mode": AutoresetMode.SAME_STEP},
    )
    n_obs, n_actions = int(envs.single_observation_space.shape[0]), int(envs.single_action_space.n)
    model = ActorCritic(n_obs, n_actions, params.hidden)
    optimizer = torch.optim.Adam(model.parameters(), lr=params.learning_rate, eps=1e-5)
    start, best_return, best_iteration = 0, -float("inf"), 0
    best_state = {k: v.clone() for k, v in model.policy.state_dict().items()}
    blob = ctx.load_checkpoint()
    if blob is not None:
        state = load_state(blob)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        best_state, best_return = state["best"], float(state["best_return"])
        start, best_iteration = int(state["epoch"]), int(state["best_iteration"])
        print(f"resuming from the checkpoint of iteration {start}", flush=True)
    ctx.set_outputs(**{f"start_{ctx.attempt}": start})
    observation, _ = envs.reset(seed=params.seed + start)
    totals = np.zeros(params.num_envs)
    began = time.monotonic()
    iteration = start
    for iteration in range(start + 1, params.iterations + 1):
        torch.manual_seed(params.seed * 100_003 + iteration)
        for group in optimizer.param_groups:  # linear decay to zero over the run
            group["lr"] = params.learning_rate * (1 - (iteration - 1) / params.iterations)
        batch, observation, finished = _rollout(model, envs, observation, totals, params)
        metrics = _update(model, optimizer, batch, params)
        if finished:
            metrics["episode_return"] = float(np.mean(finished))
        last = iteration == params.iterations
        if iteration % params.eval_every == 0 or last:
            returns = play(env_id, _greedy(model), params.eval_episodes, seed=10_000)
            metrics["mean_return"] = float(returns.mean())
            if metrics["mean_return"] > best_return:
                best_return, best_iteration = metrics["mean_return"], iteration
                best_state = {k: v.clone() for k, v in model.policy.state_dict().items()}
        ctx.log_metrics(metrics, step=iteration)
        shown = " ".join(f"{k}={v:.3f}" for k, v in metrics.items())
        print(f"iteration {iteration}/{params.iterations}: {shown}", flush=True)
        state = {"model": model.state_dict(), "optimizer": optimizer.state_dict()}
        extra = {"best": best_state, "best_return": best_return, "best_iteration": best_iteration}
        ctx.save_checkpoint(dump_state(iteration, **state, **extra), step=iteration)
        if params.sleep_s:
            time.sleep(params.sleep_s)
        if params.target_return is not None and best_return >= params.target_return:
            print(f"reached the target return {params.target_return}", flush=True)
            break
    envs.close()
    seconds = time.monotonic() - began
    model.policy.load_state_dict(best_state)
    if best_iteration == 0:  # resumed after the end with nothing evaluated: evaluate now
        returns = play(env_id, _greedy(model), params.eval_episodes, seed=10_000)
        best_return = float(returns.mean())
    path = _export(model.policy, n_obs, ctx.scratch / "policy.onnx")
    return Learned(path, best_return, best_iteration, iteration, start, round(seconds, 3))


def _rollout(
    model: ActorCritic, envs: Any, observation: Any, totals: Any, params: PpoParams
) -> tuple[dict[str, Tensor], Any, list[float]]:
    """Step the environments ``rollout_steps`` times; the batch with GAE advantages."""
    steps, n = params.rollout_steps, params.num_envs
    obs = torch.zeros(steps, n, observation.shape[1])
    actions = torch.zeros(steps, n, dtype=torch.long)
    log_probs, rewards, dones, values = (torch.zeros(steps, n) for _ in range(4))
    finished: list[float] = []
    with torch.no_grad():
        for t in range(steps):
            obs[t] = torch.as_tensor(observation, dtype=torch.float32)
            logp = torch.log_softmax(model.policy(obs[t]), dim=-1)
            actions[t] = torch.multinomial(logp.exp(), 1).squeeze(-1)
            log_probs[t] = logp.gather(-1, actions[t].unsqueeze(-1)).squeeze(-1)
            values[t] = model.value(obs[t]).squeeze(-1)
            observation, reward, terminated, truncated, info = envs.step(actions[t].numpy())
            done = terminated | truncated
            totals += reward
            for i in np.flatnonzero(done):  # the episode's true return, before bootstrapping
                finished.append(float(totals[i]))
                totals[i] = 0.0
            reward = reward.astype(np.float32)
            cut = truncated & ~terminated
            if cut.any():  # a time limit is not a failure: bootstrap from the last state
                last = torch.as_tensor(np.stack(info["final_obs"][cut]), dtype=torch.float32)
                reward[cut] += params.gamma * model.value(last).squeeze(-1).numpy()
            rewards[t] = torch.from_numpy(reward)
            dones[t] = torch.from_numpy(done.astype(np.float32))
        following = model.value(torch.as_tensor(observation, dtype=torch.float32)).squeeze(-1)
    advantages = torch.zeros(steps, n)
    running = torch.zeros(n)
    for t in reversed(range(steps)):
        after = following if t == steps - 1 else values[t + 1]
        alive = 1.0 - dones[t]
        delta = rewards[t] + params.gamma * after * alive - values[t]
        running = delta + params.gamma * params.gae_lambda * alive * running
        advantages[t] = running
    batch = {
        "obs": obs.reshape(steps * n, -1),
        "actions": actions.reshape(-1),
        "log_probs": log_probs.reshape(-1),
        "advantages": advantages.reshape(-1),
        "returns": (advantages + values).reshape(-1),
    }
    return batch, observation, finished


def _update(
    model: ActorCritic, optimizer: Any, batch: dict[str, Tensor], params: PpoParams
) -> dict[str, float]:
    """PPO's clipped policy loss plus the value loss, ``update_epochs`` passes of minibatches."""
    size = len(batch["actions"])
    sums = {"loss": 0.0, "policy_loss": 0.0, "value_loss": 0.0, "entropy": 0.0}
    count = 0
    for _ in range(params.update_epochs):
        for rows in torch.split(torch.randperm(size), params.minibatch_size):
            logp = torch.log_softmax(model.policy(batch["obs"][rows]), dim=-1)
            taken = logp.gather(-1, batch["actions"][rows].unsqueeze(-1)).squeeze(-1)
            ratio = (taken - batch["log_probs"][rows]).exp()
            advantage = batch["advantages"][rows]
            advantage = (advantage - advantage.mean()) / (advantage.std() + 1e-8)
            clipped = ratio.clamp(1 - params.clip, 1 + params.clip)
            policy_loss = -torch.min(ratio * advantage, clipped * advantage).mean()
            value = model.value(batch["obs"][rows]).squeeze(-1)
            value_loss = ((value - batch["returns"][rows]) ** 2).mean()
            entropy = -(logp.exp() * logp).sum(dim=-1).mean()
            loss = policy_loss + params.value_coef * value_loss - params.entropy_coef * entropy
            optimizer.zero_grad()
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), 0.5)
            optimizer.step()
            parts = (loss, policy_loss, value_loss, entropy)
            for key, part in zip(sums, parts, strict=True):
                sums[key] += float(part)
            count += 1
    return {key: total / count for key, total in sums.items()}
