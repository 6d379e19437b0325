"""An example aimass plugin: one item in each of four slots (see README.md).

``register(registries)`` is the entry point (group ``aimass.plugins``); the
contract this module targets is ``AIMASS_PLUGIN_CONTRACT``.
"""

from __future__ import annotations

from typing import Any

from aimass_example_plugin.cleaner import DropIncomplete
from aimass_example_plugin.combiner import GeometricMean
from aimass_example_plugin.drift import MeanShift
from aimass_example_plugin.flavor import LinearJsonFlavor

AIMASS_PLUGIN_CONTRACT = "1.0"

__all__ = ["AIMASS_PLUGIN_CONTRACT", "register"]


def register(registries: Any) -> None:
    """Add the flavor, the data cleaner, the combiner and the drift test."""
    registries.flavors.register(LinearJsonFlavor())
    registries.data_cleaners.register(DropIncomplete())
    registries.fusion_strategies.register(GeometricMean())
    registries.drift_tests.register(MeanShift())
