"""Model fusion: the combiners an ensemble deployment serves its members through.

The built-in strategies (``mean``, ``weighted_mean``, ``hard_vote``,
``soft_vote``) register in the ``fusion_strategies`` slot like any plugin's
(the ``builtin-fusion`` entry point); ``stacking`` applies a meta-model kept
as data (``stacking.fit_meta_model`` fits it out-of-fold).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from aimass.fusion.combiners import BUILTIN_STRATEGIES

if TYPE_CHECKING:
    from aimass.plugins import Registries

__all__ = ["register"]

#: The plugin contract this module's ``register`` targets (see ``aimass.plugins.contract``).
AIMASS_PLUGIN_CONTRACT = "1.0"


def register(registries: Registries) -> None:
    """Register the built-in fusion strategies (the ``builtin-fusion`` plugin)."""
    for strategy in BUILTIN_STRATEGIES:
        registries.fusion_strategies.register(strategy)
