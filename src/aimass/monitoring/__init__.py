"""Model and system monitoring: drift, prediction logs, alerts (domain code, no HTTP).

``register`` is the ``builtin-monitoring`` plugin: it fills the ``drift_tests``
slot with scipy's two-sample tests (and, as they land, the ``alert_sinks`` slot).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from aimass.plugins import Registries


def register(registries: Registries) -> None:
    """Register the built-in drift tests (the ``builtin-monitoring`` plugin)."""
    from aimass.monitoring.drift_tests import BUILTIN_TESTS

    for test in BUILTIN_TESTS:
        registries.drift_tests.register(test)
