"""Registry entities: what services return and the API serializes."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from aimass.entities.signature import Signature

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


_LOCATION_FIELDS = ("source", "uri", "artifact_uri", "location", "path", "url", "storage_location")


class JobAttemptRef(BaseModel):
    """A job and the attempt of it that registers a version."""

    model_config = ConfigDict(extra="forbid")

    id: int = Field(ge=1)
    attempt: int = Field(ge=1)


class VersionCreate(BaseModel):
    """What a client may say about an upload besides its bytes.

    There is deliberately no field for a location: the server never reads or
    fetches a path or URL a client supplies (SECURITY.md, item 3).
    """

    model_config = ConfigDict(extra="forbid")

    flavor: str | None = None
    trusted: bool = False
    signature: Signature | None = None
    metrics: dict[str, float] = Field(default_factory=dict)
    tags: dict[str, str] = Field(default_factory=dict)
    description: str = Field(default="", max_length=10_000)
    job: JobAttemptRef | None = Field(
        default=None,
        description="the job attempt that made this version (set by aimass.runtime); "
        "refused unless that attempt is still current",
    )

    @model_validator(mode="before")
    @classmethod
    def _refuse_locations(cls, data: Any) -> Any:
        if isinstance(data, dict):
            named = [k for k in _LOCATION_FIELDS if k in data]
            if named:
                raise ValueError(
                    f"'{named[0]}' is not accepted: the server never reads or fetches a "
                    "client-supplied location; upload the file's bytes instead"
                )
        return data


class VersionUpdate(BaseModel):
    """A change to a version's mutable fields; a tag set to null is removed."""

    model_config = ConfigDict(extra="forbid")

    description: str | None = Field(default=None, max_length=10_000)
    tags: dict[str, str | None] | None = None
    metrics: dict[str, float] | None = None
    status: VersionStatus | None = None


class ModelCreate(BaseModel):
    """A new model."""

    model_config = ConfigDict(extra="forbid")

    name: str
    description: str = Field(default="", max_length=10_000)
    tags: dict[str, str] = Field(default_factory=dict)


class ModelUpdate(BaseModel):
    """A change to a model; a tag set to null is removed."""

    model_config = ConfigDict(extra="forbid")

    description: str | None = Field(default=None, max_length=10_000)
    tags: dict[str, str | None] | None = None


class VersionQuery(BaseModel):
    """Filters for searching versions across models; every given filter must hold."""

    name: str | None = None
    tags: dict[str, str] = Field(default_factory=dict)
    flavor: str | None = None
    metrics: list[str] = Field(default_factory=list)
    status: VersionStatus | None = None
    alias: str | None = None


class AliasSet(BaseModel):
    """Point an alias at this version number."""

    model_config = ConfigDict(extra="forbid")

    version: int
