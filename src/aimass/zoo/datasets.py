"""Built-in datasets: made on this machine from what a library ships, or generated.

Each one is a :class:`~aimass.plugins.entries.BuiltinDataset` whose ``build``
writes one file (CSV, Parquet or NPZ) into a folder. The datasets service
(:func:`aimass.datasets.builtin.ensure_builtin`) registers it in a project as an
ordinary dataset version the first time it is used. Family modules add their own
sets through a ``DATASETS`` list; :func:`aimass.zoo.families.register` registers
them all. Nothing here downloads anything, or writes to the store.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from aimass.plugins.entries import BuiltinDataset

__all__ = ["DATASETS", "BuiltinDataset"]


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
