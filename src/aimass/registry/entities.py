"""Registry entities: what services return and the API serializes."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

from aimass.flavors.signature import Signature

VersionStatus = Literal["ready", "archived"]


class Model(BaseModel):
    """A named model in a project; its versions hold the artifacts."""

    id: int
    project: str
    name: str
    description: str = ""
    tags: dict[str, str] = Field(default_factory=dict)
    aliases: dict[str, int] = Field(default_factory=dict)
    latest_version: int | None = None
    created_at: datetime
    updated_at: datetime


class Lineage(BaseModel):
    """Where a version came from: the job that made it and the dataset it used."""

    job_id: str | None = None
    dataset: str | None = None
    dataset_version: int | None = None


class ModelVersion(BaseModel):
    """An immutable artifact of a model, with its flavor, signature and checksum."""

    id: int
    project: str
    model: str
    version: int
    flavor: str
    filename: str
    sha256: str
    size: int
    trusted: bool = False
    signature: Signature | None = None
    metrics: dict[str, float] = Field(default_factory=dict)
    tags: dict[str, str] = Field(default_factory=dict)
    description: str = ""
    status: VersionStatus = "ready"
    aliases: list[str] = Field(default_factory=list)
    lineage: Lineage = Field(default_factory=Lineage)
    created_at: datetime
