"""Preprocessing pipelines shared by training and serving (see ``pipeline``), and their flavor."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aimass.preprocessing.pipeline import ColumnSpec, FittedPipeline, clean_table, fit_pipeline

if TYPE_CHECKING:
    from aimass.plugins import Registries

__all__ = ["ColumnSpec", "FittedPipeline", "clean_table", "fit_pipeline", "register"]

#: The plugin contract this module's ``register`` targets (see ``aimass.plugins.contract``).
AIMASS_PLUGIN_CONTRACT = "1.0"


def register(registries: Registries) -> None:
    """Register the ``preprocessing`` flavor (the ``builtin-preprocessing`` plugin)."""
    from aimass.preprocessing.flavor import PreprocessingFlavor

    registries.flavors.register(PreprocessingFlavor())
