"""Project-scoped row lookups, on each backend."""

from __future__ import annotations

import pytest

from aimass.errors import NotFound
from aimass.store.db import Database
from aimass.store.orm import DatasetRow, ModelRow, ScheduleRow
from aimass.store.projects import find_named_row, list_named_rows, read_project_row
from aimass.store.versioning import ensure_parent


def test_read_project_row_finds_the_default_and_refuses_an_unknown(db: Database) -> None:
    with db.session() as session:
        assert read_project_row(session, "default").name == "default"
        with pytest.raises(NotFound, match="'nope'"):
            read_project_row(session, "nope")


def test_named_rows_are_none_and_empty_in_a_fresh_project(db: Database) -> None:
    with db.session() as session:
        assert find_named_row(session, ScheduleRow, "default", "nightly") is None
        assert list(list_named_rows(session, ScheduleRow, "default")) == []


def test_ensure_parent_creates_once_then_finds(db: Database) -> None:
    first = ensure_parent(db, ModelRow, "default", "m")
    assert ensure_parent(db, ModelRow, "default", "m") == first
    assert ensure_parent(db, DatasetRow, "default", "m") != 0
    with pytest.raises(NotFound):
        ensure_parent(db, ModelRow, "nope", "m")
