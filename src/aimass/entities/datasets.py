"""Dataset entities: an immutable upload with its schema and statistical profile."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

DatasetFormat = Literal["csv", "parquet", "npz"]


class ColumnSchema(BaseModel):
    """One column: its name and its dtype as pandas names it."""

    name: str
    dtype: str


class Histogram(BaseModel):
    """Counts per bin; ``edges`` has one more entry than ``counts``."""

    edges: list[float]
    counts: list[int]


class ColumnProfile(BaseModel):
    """Summary statistics of one column; numeric fields are None for text columns."""

    name: str
    dtype: str
    count: int
    missing: int
    min: float | None = None
    max: float | None = None
    mean: float | None = None
    std: float | None = None
    quantiles: dict[str, float] = Field(default_factory=dict)
    histogram: Histogram | None = None
    top: dict[str, int] = Field(default_factory=dict)
    distinct: int | None = None


class Profile(BaseModel):
    """The statistical profile of a dataset version (the drift reference)."""

    num_rows: int
    columns: list[ColumnProfile]


class Dataset(BaseModel):
    """A named dataset in a project."""

    id: int
    project: str
    name: str
    description: str = ""
    latest_version: int | None = None
    created_at: datetime


class DatasetVersion(BaseModel):
    """One immutable upload of a dataset."""

    id: int
    project: str
    dataset: str
    version: int
    format: DatasetFormat
    filename: str
    sha256: str
    size: int
    num_rows: int
    columns: list[ColumnSchema]
    profile: Profile
    description: str = ""
    created_at: datetime
