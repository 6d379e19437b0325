"""``Registries``: one registry per extension point (slot), and how each plugin loaded."""

from __future__ import annotations

from dataclasses import dataclass, field, fields

from aimass.entities.plugins import PluginStatus
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
    #: How each entry point loaded (``load_plugins`` fills it; not a slot).
    statuses: list[PluginStatus] = field(default_factory=list, compare=False)


def slot_names() -> list[str]:
    """The extension points, in field order (``statuses`` is not one)."""
    return [f.name for f in fields(Registries) if f.name != "statuses"]
