"""The model library's families, and the plugin that registers their entries and datasets."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aimass.zoo import (
    classical,
    datasets,
    graph,
    nlp_neural,
    nlp_tfidf,
    nlp_transformers,
    recsys,
    rl,
    tabular_mlp,
    vision,
)

if TYPE_CHECKING:
    from aimass.plugins import Registries
    from aimass.plugins.entries import BuiltinDataset, Entry

#: The family modules, in the order the catalogue lists their families.
FAMILIES = (
    classical,
    tabular_mlp,
    vision,
    nlp_tfidf,
    nlp_neural,
    nlp_transformers,
    recsys,
    graph,
    rl,
)

__all__ = ["FAMILIES", "builtin_datasets", "register", "zoo_entries"]


def zoo_entries() -> list[Entry]:
    """Every model-library entry, family by family."""
    return [entry for family in FAMILIES for entry in family.ENTRIES]


def builtin_datasets() -> dict[str, BuiltinDataset]:
    """Every built-in dataset by name: the generic sets and the families' ``DATASETS``."""
    found: dict[str, BuiltinDataset] = {d.name: d for d in datasets.DATASETS}
    for family in FAMILIES:
        for dataset in getattr(family, "DATASETS", ()):
            found[dataset.name] = dataset
    return found


#: The plugin contract this module's ``register`` targets (see ``aimass.plugins.contract``).
AIMASS_PLUGIN_CONTRACT = "1.0"


def register(registries: Registries) -> None:
    """Register the library's entries and built-in datasets (the ``builtin-zoo`` plugin)."""
    for entry in zoo_entries():
        registries.entries.register(entry)
    for dataset in builtin_datasets().values():
        registries.datasets.register(dataset)
