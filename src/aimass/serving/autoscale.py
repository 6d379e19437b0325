"""The autoscaling policy as pure code: samples of ongoing requests in, a replica count out.

It follows Ray Serve's default policy. Every tick the caller adds a sample (the
ongoing requests of the whole deployment on the node, averaged since the last
sample) and asks for the count: the mean over ``look_back_period_s``, divided by
``target_ongoing_requests`` and rounded up, clamped to ``[min_replicas,
max_replicas]``, is what the load asks for. The count moves up to it only once the
load has asked for more than the current count for ``upscale_delay_s`` without a
break, and down only once it has asked for fewer for ``downscale_delay_s``.
Nothing here reads a clock or does I/O: times are given.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field

from aimass.entities.deployments import Autoscaling


@dataclass(frozen=True)
class Sample:
    """The deployment's ongoing requests (all replicas together) at time ``at`` (seconds)."""

    at: float
    ongoing: float


@dataclass
class ScaleState:
    """What the policy remembers between ticks for one deployment."""

    samples: deque[Sample] = field(default_factory=deque)
    #: Since when the load has asked for more (or fewer) replicas than there are.
    up_since: float | None = None
    down_since: float | None = None


def wanted_by_load(config: Autoscaling, mean_ongoing: float) -> int:
    """The replica count the load asks for, clamped to the bounds."""
    raw = math.ceil(mean_ongoing / config.target_ongoing_requests - 1e-9)
    return max(config.min_replicas, min(config.max_replicas, raw))


def mean_ongoing(samples: deque[Sample], now: float, window: float) -> float | None:
    """The mean of the samples taken within ``window`` seconds of ``now`` (None: none)."""
    recent = [s.ongoing for s in samples if s.at >= now - window]
    return sum(recent) / len(recent) if recent else None


def decide(
    config: Autoscaling, state: ScaleState, current: int, sample: Sample | None = None
) -> int:
    """Record ``sample`` (if any) and return the replica count to have now.

    ``current``: the replicas the deployment has (or is moving to). Outside the
    bounds (the settings changed) the count moves into them at once; otherwise it
    moves only after the delays above.
    """
    if sample is not None:
        state.samples.append(sample)
    if not state.samples:
        return max(config.min_replicas, min(config.max_replicas, current))
    now = state.samples[-1].at
    while state.samples and state.samples[0].at < now - config.look_back_period_s:
        state.samples.popleft()
    clamped = max(config.min_replicas, min(config.max_replicas, current))
    if clamped != current:
        state.up_since = state.down_since = None
        return clamped
    mean = mean_ongoing(state.samples, now, config.look_back_period_s)
    wanted = wanted_by_load(config, mean or 0.0)
    if wanted > current:
        state.down_since = None
        if state.up_since is None:
            state.up_since = now
        if now - state.up_since >= config.upscale_delay_s:
            state.up_since = None
            return wanted
    elif wanted < current:
        state.up_since = None
        if state.down_since is None:
            state.down_since = now
        if now - state.down_since >= config.downscale_delay_s:
            state.down_since = None
            return wanted
    else:
        state.up_since = state.down_since = None
    return current
