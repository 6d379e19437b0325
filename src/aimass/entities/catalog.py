"""Catalogue entities: what jobs run by name, the model library's view of them, built-in data.

The server answers ``/api/v1/jobs/entries``, ``/api/v1/zoo`` and
``/api/v1/zoo/datasets`` with these, and the SDK parses the answers with them.
A key the server leaves out stays left out (the routes drop unset fields), so
the JSON is what the catalogue describes, no more.
"""

from __future__ import annotations

from pydantic import BaseModel, Field, JsonValue


class EntryInfo(BaseModel):
    """A runnable entry: its kinds, description, params schema and model-library metadata."""

    name: str
    kinds: list[str] = Field(default_factory=list)
    description: str
    needs_dataset: bool = False
    params_schema: dict[str, JsonValue] = Field(default_factory=dict)
    task: str | None = None
    family: str | None = None
    default_dataset: str | None = None
    exports: list[str] = Field(default_factory=list)
    signature: dict[str, JsonValue] | None = None
    example_request: dict[str, JsonValue] | None = None
    #: False when the extra it needs is not installed on the server; ``install`` installs it.
    available: bool = True
    extra: str | None = None
    install: str | None = None


class ZooParam(BaseModel):
    """One param of an entry: its type, default, whether it is required, and its bounds."""

    name: str
    type: str
    default: JsonValue = None
    required: bool = False
    constraints: list[str] = Field(default_factory=list)
    description: str = ""


class ZooEntry(EntryInfo):
    """A model-library entry: what it learns, from what, and what it serves."""

    params: list[ZooParam] = Field(default_factory=list)
    train_request: dict[str, JsonValue] | None = None
    train_command: str = ""
    infer_command: str = ""


class BuiltinDatasetInfo(BaseModel):
    """A built-in dataset, and its version in the project (None until first used)."""

    name: str
    task: str
    size: str = ""
    source: str = ""
    format: str = ""
    description: str = ""
    version: int | None = None
    #: False when the extra it needs is not installed on the server; ``install`` installs it.
    available: bool = True
    extra: str | None = None
    install: str | None = None
