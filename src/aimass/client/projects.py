"""Projects through the SDK: the tenants that own models and datasets."""

from __future__ import annotations

import builtins

from aimass.client._http import HttpSession
from aimass.entities.projects import Project

__all__ = ["Project", "Projects"]


class Projects:
    """Projects (``client.projects``); creating one needs an admin token."""

    def __init__(self, http: HttpSession) -> None:
        self._http = http

    def list(self) -> builtins.list[Project]:
        """Every project."""
        return [Project.model_validate(p) for p in self._http.get_all("/api/v1/projects")]

    def create(self, name: str) -> Project:
        """Create a project."""
        answer = self._http.request("POST", "/api/v1/projects", json_body={"name": name})
        return Project.model_validate(answer.json())
