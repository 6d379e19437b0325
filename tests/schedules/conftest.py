"""A database on each backend and a small entry catalogue for schedule templates.

``db`` and ``submit`` are the pipeline tests' (``tests/pipelines/conftest.py``).
"""

from __future__ import annotations

import pytest

from aimass.jobs.catalog import Entry, EntryCatalog
from pipelines.conftest import TrainParams, submit

__all__ = ["catalog", "submit"]


@pytest.fixture
def catalog() -> EntryCatalog:
    catalog = EntryCatalog()
    catalog.add(Entry("toy.train", frozenset({"train"}), "toy:train", "trains", TrainParams))
    return catalog
