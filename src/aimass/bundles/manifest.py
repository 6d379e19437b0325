"""The bundle manifest: what a bundle holds and where the model version came from."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from aimass.artifacts.names import validate_filename, validate_name
from aimass.errors import InvalidInput
from aimass.flavors.signature import Signature

MANIFEST_NAME = "manifest.json"
ARTIFACT_DIR = "artifact"


class BundleManifest(BaseModel):
    """The ``manifest.json`` of a bundle; ``sha256`` and ``size`` describe the artifact."""

    model_config = ConfigDict(extra="forbid")

    format: Literal["aimass-bundle"] = "aimass-bundle"
    format_version: Literal[1] = 1
    model: str
    version: int = Field(ge=1)
    flavor: str = Field(min_length=1, max_length=128)
    filename: str
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    size: int = Field(ge=0)
    signature: Signature | None
    metrics: dict[str, float] = Field(default_factory=dict)
    tags: dict[str, str] = Field(default_factory=dict)
    description: str = ""
    model_description: str = ""
    model_tags: dict[str, str] = Field(default_factory=dict)
    exported_at: datetime
    aimass_version: str = Field(max_length=64)

    @field_validator("model")
    @classmethod
    def _valid_model_name(cls, value: str) -> str:
        try:
            return validate_name(value, "model name")
        except InvalidInput as exc:
            raise ValueError(exc.message) from None

    @field_validator("filename")
    @classmethod
    def _valid_filename(cls, value: str) -> str:
        try:
            return validate_filename(value)
        except InvalidInput as exc:
            raise ValueError(exc.message) from None

    @property
    def artifact_member(self) -> str:
        """The archive member name of the artifact: ``artifact/<filename>``."""
        return f"{ARTIFACT_DIR}/{self.filename}"
