"""A database on each backend and a small entry catalogue for schedule templates."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from pydantic import BaseModel, ConfigDict
from sqlalchemy.orm import Session

from aimass.jobs import service as jobs
from aimass.jobs.catalog import Entry, EntryCatalog
from aimass.jobs.entities import Job, JobCreate
from aimass.schedules.service import SubmitJob
from aimass.store.db import Database


class TrainParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    C: float = 1.0


@pytest.fixture
def catalog() -> EntryCatalog:
    catalog = EntryCatalog()
    catalog.add(Entry("toy.train", frozenset({"train"}), "toy:train", "trains", TrainParams))
    return catalog


@pytest.fixture
def submit(catalog: EntryCatalog) -> SubmitJob:
    """What the app injects: submit_job with the catalogue."""

    def submit_job(session: Session, project: str, spec: JobCreate) -> Job:
        return jobs.submit_job(session, project, spec, catalog)

    return submit_job


@pytest.fixture
def db(db_url: str) -> Iterator[Database]:
    database = Database(db_url)
    yield database
    database.close()
