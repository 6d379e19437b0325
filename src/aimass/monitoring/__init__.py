"""Model and system monitoring: drift, prediction logs, alerts (domain code, no HTTP).

``register`` is the ``builtin-monitoring`` plugin: it fills the ``drift_tests``
slot with scipy's two-sample tests and the ``alert_sinks`` slot with the ``log`` sink.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from aimass.plugins import Registries


def register(registries: Registries) -> None:
    """Register the built-in drift tests and the ``log`` alert sink (``builtin-monitoring``).

    Webhook sinks need a URL, so the platform adds them from the settings.
    """
    from aimass.monitoring.alerts import LogSink
    from aimass.monitoring.drift_tests import BUILTIN_TESTS

    for test in BUILTIN_TESTS:
        registries.drift_tests.register(test)
    registries.alert_sinks.register(LogSink())
