"""The drift detector on seeded windows: it finds a half-std shift and is quiet otherwise."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from aimass.errors import InvalidInput
from aimass.monitoring.drift import DriftDetector, DriftSettings
from aimass.plugins import load_plugins

TESTS = {t.name: t for t in load_plugins().drift_tests}
WINDOW = 250


def _table(rng: np.random.Generator, rows: int, shift: float = 0.0) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "age": rng.normal(40.0, 10.0, rows) + shift * 10.0,
            "income": rng.lognormal(10.0, 0.5, rows),
            "plan": rng.choice(["basic", "plus", "pro"], rows, p=[0.6, 0.3, 0.1]),
        }
    )


@pytest.fixture(scope="module")
def detector() -> DriftDetector:
    return DriftDetector(_table(np.random.default_rng(7), 2000), TESTS)


def test_builtin_drift_tests_are_registered_as_a_plugin() -> None:
    assert {"ks", "cvm", "anderson", "chi2"} <= set(TESTS)


def test_half_a_standard_deviation_shift_flags_that_feature_only(detector: DriftDetector) -> None:
    rng = np.random.default_rng(11)
    for _ in range(5):
        report = detector.check(_table(rng, WINDOW, shift=0.5))
        assert report.drifted == ["age"]
        age = report.features[0]
        assert age.kind == "numeric" and age.test == "ks" and age.distance == "wasserstein_std"
        assert age.score == pytest.approx(0.5, abs=0.2)  # in reference standard deviations


def test_a_category_mix_change_flags_the_categorical_feature(detector: DriftDetector) -> None:
    rng = np.random.default_rng(12)
    window = _table(rng, WINDOW)
    window["plan"] = rng.choice(["basic", "plus", "pro"], WINDOW, p=[0.3, 0.3, 0.4])
    report = detector.check(window)
    assert report.drifted == ["plan"]
    plan = report.features[2]
    assert plan.kind == "categorical" and plan.test == "chi2" and plan.psi > 0.25


def test_false_alarm_rate_over_1000_in_distribution_windows_is_at_most_1_percent(
    detector: DriftDetector,
) -> None:
    rng = np.random.default_rng(2024)
    alarms = sum(bool(detector.check(_table(rng, WINDOW)).drifted) for _ in range(1000))
    assert alarms <= 10, f"{alarms} of 1000 in-distribution windows raised drift"


def test_a_large_window_does_not_fire_on_a_negligible_difference() -> None:
    # evidently#50: with enough rows any p-value gets small; the calibrated distance does not.
    rng = np.random.default_rng(3)
    detector = DriftDetector(_table(rng, 5000), TESTS, DriftSettings(bootstrap=40))
    report = detector.check(_table(rng, 20000, shift=0.08))
    age = report.features[0]
    assert age.p_value < 0.001 and age.score < age.threshold == 0.1
    assert report.drifted == []


def test_bad_input_is_refused_with_a_clear_message(detector: DriftDetector) -> None:
    with pytest.raises(InvalidInput, match="no column 'age'"):
        detector.check(pd.DataFrame({"income": [1.0]}))
    with pytest.raises(InvalidInput, match="no drift test named 'nope'"):
        DriftDetector(
            _table(np.random.default_rng(0), 50), TESTS, DriftSettings(numeric_test="nope")
        )
