"""Built-in datasets: made on this machine from what a library ships, or generated.

Each one is a :class:`BuiltinDataset` whose ``build`` writes one file (CSV,
Parquet or NPZ) into a folder. :func:`ensure_builtin` registers it in a project
as an ordinary dataset version the first time it is used; after that the stored
version is used as it is (a user may also upload newer versions under the name).
Family modules add their own sets through a ``DATASETS`` list (see
:func:`aimass.zoo.builtin_datasets`). Nothing here downloads anything.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from aimass.artifacts.store import ArtifactStore
from aimass.datasets.entities import DatasetVersion
from aimass.errors import NotFound
from aimass.store.db import Database


@dataclass(frozen=True)
class BuiltinDataset:
    """A dataset that needs no download: ``build(folder)`` writes ``filename`` there."""

    name: str
    description: str
    task: str
    filename: str
    build: Callable[[Path], Path]
    #: What it holds, for listings: "150 rows, 4 features, 3 classes".
    size: str = ""
    #: Where it comes from: "scikit-learn", "networkx", "gymnasium", "generated".
    source: str = "generated"

    def describe(self) -> dict[str, str]:
        """What the catalogue lists: name, task, size, source and description."""
        return {
            "name": self.name,
            "task": self.task,
            "size": self.size,
            "source": self.source,
            "format": Path(self.filename).suffix.lstrip("."),
            "description": self.description,
        }


def _sklearn(loader: str, filename: str) -> Callable[[Path], Path]:
    """A builder writing scikit-learn's bundled set as a CSV, features then ``target``."""

    def build(folder: Path) -> Path:
        from sklearn import datasets

        frame = getattr(datasets, loader)(as_frame=True).frame
        path = folder / filename
        frame.to_csv(path, index=False)
        return path

    return build


def _texts(folder: Path) -> Path:
    from aimass.zoo._texts import text_topics_frame

    path = folder / "text_topics.csv"
    text_topics_frame().to_csv(path, index=False)
    return path


#: The sets this module owns (scikit-learn's bundled ones and the generated text set).
DATASETS: list[BuiltinDataset] = [
    BuiltinDataset(
        "iris",
        "Fisher's iris flowers: 4 measurements, 3 species (scikit-learn's bundled copy).",
        "classification",
        "iris.csv",
        _sklearn("load_iris", "iris.csv"),
        "150 rows, 4 features, 3 classes",
        "scikit-learn",
    ),
    BuiltinDataset(
        "wine",
        "Chemical analysis of wines from three cultivars (scikit-learn's bundled copy).",
        "classification",
        "wine.csv",
        _sklearn("load_wine", "wine.csv"),
        "178 rows, 13 features, 3 classes",
        "scikit-learn",
    ),
    BuiltinDataset(
        "breast_cancer",
        "Wisconsin diagnostic breast cancer: 30 cell-nucleus features, malignant (0) or "
        "benign (1) (scikit-learn's bundled copy).",
        "classification",
        "breast_cancer.csv",
        _sklearn("load_breast_cancer", "breast_cancer.csv"),
        "569 rows, 30 features, 2 classes",
        "scikit-learn",
    ),
    BuiltinDataset(
        "digits",
        "8x8 images of handwritten digits, pixel_<row>_<col> in 0-16 (scikit-learn's "
        "bundled copy).",
        "classification",
        "digits.csv",
        _sklearn("load_digits", "digits.csv"),
        "1797 rows, 64 features, 10 classes",
        "scikit-learn",
    ),
    BuiltinDataset(
        "diabetes",
        "Diabetes progression one year after baseline from 10 scaled measurements "
        "(scikit-learn's bundled copy).",
        "regression",
        "diabetes.csv",
        _sklearn("load_diabetes", "diabetes.csv"),
        "442 rows, 10 features, continuous target",
        "scikit-learn",
    ),
    BuiltinDataset(
        "text_topics",
        "Short English sentences about four topics (sports, technology, cooking, weather), "
        "generated from templates with a fixed seed: columns text and label.",
        "classification",
        "text_topics.csv",
        _texts,
        "480 rows, 1 text column, 4 classes",
        "generated",
    ),
]


def builtin(name: str) -> BuiltinDataset:
    """The built-in dataset called ``name``; NotFound lists the known ones."""
    from aimass.zoo import builtin_datasets

    known = builtin_datasets()
    found = known.get(name)
    if found is None:
        raise NotFound(f"no built-in dataset {name!r} (known: {', '.join(sorted(known))})")
    return found


def is_builtin(name: str) -> bool:
    """True when ``name`` is a built-in dataset's name."""
    from aimass.zoo import builtin_datasets

    return name in builtin_datasets()


def ensure_builtin(
    db: Database,
    store: ArtifactStore,
    project: str,
    name: str,
    spool_dir: Path | None = None,
) -> DatasetVersion:
    """The project's dataset ``name``, registered from the built-in set on first use.

    Idempotent and safe under concurrent callers: the first version is inserted
    as version 1 exactly, so of two callers racing one inserts it and the other
    reads it. A project that already has the dataset (built or uploaded) keeps it.
    """
    from aimass.zoo._materialize import latest_version, register_first_version

    existing = latest_version(db, project, name)
    if existing is not None:
        return existing
    found = builtin(name)
    with tempfile.TemporaryDirectory(dir=spool_dir, prefix="builtin-") as tmp:
        path = found.build(Path(tmp))
        return register_first_version(
            db, store, project=project, name=name, path=path, description=found.description
        )


def job_dataset(
    db: Database,
    store: ArtifactStore,
    project: str,
    dataset: str | None,
    default_dataset: str | None,
    spool_dir: Path | None = None,
) -> str | None:
    """The dataset a job runs on: the one it names, else its entry's default.

    A built-in dataset the project does not have yet is materialized first.
    """
    chosen = dataset or default_dataset
    if chosen is not None and is_builtin(chosen):
        ensure_builtin(db, store, project, chosen, spool_dir)
    return chosen
