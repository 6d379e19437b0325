"""Projects: the tenants that own models, datasets, deployments and jobs."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict


class Project(BaseModel):
    """A tenant; every model and dataset belongs to one."""

    name: str
    created_at: datetime


class ProjectCreate(BaseModel):
    """A new project."""

    model_config = ConfigDict(extra="forbid")

    name: str
