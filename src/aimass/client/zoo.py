"""The model library through the SDK: browse entries and built-in datasets, train one."""

from __future__ import annotations

import builtins
from collections.abc import Mapping
from urllib.parse import quote

from pydantic import JsonValue

from aimass.client._http import HttpSession
from aimass.client.jobs import Jobs
from aimass.entities.catalog import BuiltinDatasetInfo, ZooEntry, ZooParam
from aimass.entities.datasets import DatasetVersion
from aimass.entities.jobs import Job

__all__ = ["BuiltinDatasetInfo", "Zoo", "ZooEntry", "ZooParam"]


class Zoo:
    """The model library (``client.zoo``): entries, built-in datasets, training."""

    def __init__(self, http: HttpSession, jobs: Jobs) -> None:
        self._http = http
        self._jobs = jobs

    def list(self) -> builtins.list[ZooEntry]:
        """Every entry in the library."""
        items = self._http.get_json("/api/v1/zoo", self._http.scoped())
        return [ZooEntry.model_validate(e) for e in items]

    def get(self, name: str) -> ZooEntry:
        """One entry, with its params, signature and example request."""
        data = self._http.get_json(f"/api/v1/zoo/{quote(name, safe='')}", self._http.scoped())
        return ZooEntry.model_validate(data)

    def datasets(self) -> builtins.list[BuiltinDatasetInfo]:
        """The built-in datasets, each with its version in the project if it has one."""
        items = self._http.get_json("/api/v1/zoo/datasets", self._http.scoped())
        return [BuiltinDatasetInfo.model_validate(d) for d in items]

    def materialize(self, name: str) -> DatasetVersion:
        """Register built-in dataset ``name`` in the project now (a no-op once it is there)."""
        answer = self._http.request(
            "POST", f"/api/v1/zoo/datasets/{quote(name, safe='')}", params=self._http.scoped()
        )
        return DatasetVersion.model_validate(answer.json())

    def train(
        self,
        name: str,
        params: Mapping[str, JsonValue] | None = None,
        dataset: str | None = None,
        *,
        cpu: float = 1.0,
        gpu: int = 0,
    ) -> Job:
        """Queue a train job of entry ``name`` (on its default dataset unless ``dataset``)."""
        return self._jobs.submit(name, params=params, dataset=dataset, cpu=cpu, gpu=gpu)
