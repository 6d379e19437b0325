"""Plugins: everything that extends aimass registers through the ``aimass.plugins`` entry points.

Each entry point names a callable ``register(registries: Registries) -> None``.
The built-ins register the same way (flavors, job entries, the model library),
so there is one code path. A broken plugin is a ``PluginWarning`` naming it,
never a crash. The slot types live here (``entries``, ``slots``) so that
extensions import this package, never the other way round; it must not import
the API or a domain package.
"""

from __future__ import annotations

import functools
import logging
import warnings
from collections.abc import Iterable
from dataclasses import dataclass, field
from importlib import metadata
from importlib.metadata import EntryPoint

from aimass.flavors.registry import FlavorRegistry
from aimass.plugins.entries import BuiltinDataset, Entry
from aimass.plugins.registry import Registry
from aimass.plugins.slots import (
    AlertSink,
    DataCleaner,
    DriftTest,
    ExecutorFactory,
    FeatureExtractor,
    FusionStrategy,
)

__all__ = [
    "GROUP",
    "BuiltinDataset",
    "Entry",
    "PluginWarning",
    "Registries",
    "Registry",
    "default_registries",
    "load_plugins",
]

#: The entry-point group plugins declare in their packaging metadata.
GROUP = "aimass.plugins"

logger = logging.getLogger(__name__)


class PluginWarning(UserWarning):
    """A plugin could not be loaded or failed to register; it was skipped."""


@dataclass
class Registries:
    """The registries a plugin's ``register`` may add to; one field per extension point."""

    flavors: FlavorRegistry = field(default_factory=FlavorRegistry)
    #: What jobs run by name (``aimass.jobs.catalog`` serves them).
    entries: Registry[Entry] = field(default_factory=lambda: Registry("job entry"))
    #: Datasets made on this machine on first use (the model library's).
    datasets: Registry[BuiltinDataset] = field(default_factory=lambda: Registry("dataset"))
    # Empty until the features that use them land; a plugin may fill them already.
    feature_extractors: Registry[FeatureExtractor] = field(
        default_factory=lambda: Registry("feature extractor")
    )
    data_cleaners: Registry[DataCleaner] = field(default_factory=lambda: Registry("data cleaner"))
    fusion_strategies: Registry[FusionStrategy] = field(
        default_factory=lambda: Registry("fusion strategy")
    )
    drift_tests: Registry[DriftTest] = field(default_factory=lambda: Registry("drift test"))
    alert_sinks: Registry[AlertSink] = field(default_factory=lambda: Registry("alert sink"))
    executors: Registry[ExecutorFactory] = field(default_factory=lambda: Registry("executor"))


def _builtin_first(entry_point: EntryPoint) -> tuple[bool, str]:
    # aimass's own entry points go first so that built-in formats are sniffed first
    # and a plugin cannot take a built-in's name.
    return (not entry_point.value.startswith("aimass."), entry_point.name)


def load_plugins(entry_points: Iterable[EntryPoint] | None = None) -> Registries:
    """Build the registries by calling every plugin's ``register``, skipping broken ones.

    ``entry_points`` defaults to the installed ``aimass.plugins`` group.
    """
    if entry_points is None:
        entry_points = metadata.entry_points(group=GROUP)
    registries = Registries()
    for entry_point in sorted(entry_points, key=_builtin_first):
        try:
            register = entry_point.load()
            if not callable(register):
                raise TypeError(f"{entry_point.value} is not callable")
            register(registries)
        except Exception as exc:
            message = (
                f"aimass plugin {entry_point.name!r} ({entry_point.value}) was skipped: "
                f"{type(exc).__name__}: {exc}"
            )
            logger.warning(message)
            warnings.warn(message, PluginWarning, stacklevel=2)
    return registries


@functools.cache
def default_registries() -> Registries:
    """The registries of the installed plugins, built once per process.

    The composition root builds its own with ``load_plugins``; this one serves
    code that has no platform at hand (a job's process, the command line).
    """
    return load_plugins()
