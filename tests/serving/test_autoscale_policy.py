"""The autoscaling policy on synthetic samples: up after the upscale delay, down after the
downscale delay, clamped to the bounds, settings validated."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from aimass.entities.deployments import Autoscaling, DeploymentCreate, Resources
from aimass.serving.autoscale import Sample, ScaleState, decide, wanted_by_load


def _config(**changes: float) -> Autoscaling:
    values: dict[str, float] = {
        "min_replicas": 1,
        "max_replicas": 3,
        "target_ongoing_requests": 2,
        "upscale_delay_s": 2.0,
        "downscale_delay_s": 5.0,
        "look_back_period_s": 3.0,
    }
    return Autoscaling.model_validate({**values, **changes})


def _run(config: Autoscaling, loads: list[float], start: int = 1, step: float = 0.5) -> list[int]:
    """Feed one sample per ``step`` seconds and follow the decisions; the count after each."""
    state = ScaleState()
    current = start
    counts = []
    for tick, load in enumerate(loads):
        current = decide(config, state, current, Sample(tick * step, load))
        counts.append(current)
    return counts


@pytest.mark.parametrize(
    ("ongoing", "expected"),
    [(0, 1), (0.5, 1), (2, 1), (2.01, 2), (4, 2), (5, 3), (6, 3), (100, 3)],
)
def test_wanted_by_load_divides_by_the_target_and_clamps(ongoing: float, expected: int) -> None:
    assert wanted_by_load(_config(), ongoing) == expected


def test_load_rises_replicas_go_up_after_the_upscale_delay_not_before() -> None:
    counts = _run(_config(), [8.0] * 10)
    # t = 0 first asks for 3; the upscale delay is 2 s: it moves at t = 2 (tick 4).
    assert counts[:4] == [1, 1, 1, 1]
    assert counts[4:] == [3] * 6


def test_zero_upscale_delay_moves_at_once() -> None:
    assert _run(_config(upscale_delay_s=0), [8.0, 8.0]) == [3, 3]


def test_a_short_burst_under_the_delay_does_not_scale() -> None:
    # Load for 1 s, then quiet: the delay restarts when the load stops asking for more.
    counts = _run(_config(look_back_period_s=0.5), [8, 8, 8, 0, 0, 0, 8, 8, 8, 0])
    assert set(counts) == {1}


def test_load_stops_replicas_go_down_after_the_downscale_delay() -> None:
    config = _config(look_back_period_s=1.0)
    counts = _run(config, [8.0] * 6 + [0.0] * 20)
    assert counts[4] == 3
    # The window (1 s) forgets the load by t = 3.5 (tick 7), then 5 s of asking for 1.
    assert 3 in counts[6:16] and counts[-1] == 1
    first_one = counts.index(1, 5)
    assert 0.5 * first_one >= 3.0 + 5.0


def test_the_mean_over_the_look_back_window_smooths_a_dip() -> None:
    # Two replicas' worth of load with a one-sample dip: the 3 s mean stays above one.
    config = _config(downscale_delay_s=0.0, upscale_delay_s=0.0)
    counts = _run(config, [4, 4, 4, 4, 0, 4, 4], start=2)
    assert set(counts) == {2}


def test_partial_load_settles_between_the_bounds() -> None:
    config = _config(max_replicas=5, upscale_delay_s=0, downscale_delay_s=0, look_back_period_s=0.5)
    assert _run(config, [7, 7, 3, 3, 3, 3])[-1] == 2
    assert _run(config, [7, 7])[-1] == 4


def test_settings_changed_below_the_count_clamp_at_once() -> None:
    state = ScaleState()
    config = _config(max_replicas=2, downscale_delay_s=600)
    assert decide(config, state, 3, Sample(0.0, 100.0)) == 2
    assert decide(_config(min_replicas=2), ScaleState(), 1) == 2


def test_no_samples_keeps_the_count_inside_the_bounds() -> None:
    assert decide(_config(), ScaleState(), 2) == 2


def test_old_samples_leave_the_window() -> None:
    state = ScaleState()
    config = _config(look_back_period_s=1.0)
    for tick in range(10):
        decide(config, state, 1, Sample(tick * 0.5, 1.0))
    assert len(state.samples) <= 3


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"min_replicas": 0}, "greater than or equal to 1"),
        ({"min_replicas": 3, "max_replicas": 2}, "'max_replicas' (2) is below 'min_replicas' (3)"),
        ({"target_ongoing_requests": 0}, "greater than 0"),
        ({"upscale_delay_s": -1}, "greater than or equal to 0"),
        ({"max_replicas": 65}, "less than or equal to 64"),
        ({"target": 2}, "Extra inputs are not permitted"),
    ],
)
def test_bad_settings_are_refused_with_the_reason(settings: dict[str, float], message: str) -> None:
    with pytest.raises(ValidationError) as caught:
        Autoscaling.model_validate(settings)
    assert message in str(caught.value)


def test_autoscaling_needs_runner_processes() -> None:
    with pytest.raises(ValidationError, match=r"set resources\.runner to 'process'"):
        DeploymentCreate(model="m", version=1, autoscaling=Autoscaling(max_replicas=3))
    created = DeploymentCreate(
        model="m",
        version=1,
        resources=Resources(runner="process"),
        autoscaling=Autoscaling(max_replicas=3),
    )
    assert created.autoscaling is not None and created.autoscaling.max_replicas == 3
