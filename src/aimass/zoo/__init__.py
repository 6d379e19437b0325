"""The model library: ready entries from classical ML to deep learning, each a ``train`` job.

Each family module holds ``ENTRIES`` (catalogue entries with their params,
task, default dataset, exports, signature and an example request) and may hold
``DATASETS`` (built-in datasets that need no download). Importing them loads no
ML library: each entry imports what it needs inside its train function, in the
job's process. Must not import the API.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from aimass.zoo import (
    classical,
    datasets,
    graph,
    nlp_neural,
    nlp_tfidf,
    recsys,
    rl,
    tabular_mlp,
    vision,
)

if TYPE_CHECKING:
    from aimass.jobs.catalog import Entry
    from aimass.zoo.datasets import BuiltinDataset

#: The family modules, in the order the catalogue lists their families.
FAMILIES = (classical, tabular_mlp, vision, nlp_tfidf, nlp_neural, recsys, graph, rl)

__all__ = ["FAMILIES", "builtin_datasets", "zoo_entries"]


def zoo_entries() -> list[Entry]:
    """Every model-library entry, family by family."""
    return [entry for family in FAMILIES for entry in family.ENTRIES]


def builtin_datasets() -> dict[str, BuiltinDataset]:
    """Every built-in dataset by name: this package's own and the families' ``DATASETS``."""
    found: dict[str, BuiltinDataset] = {d.name: d for d in datasets.DATASETS}
    for family in FAMILIES:
        for dataset in getattr(family, "DATASETS", ()):
            found[dataset.name] = dataset
    return found
