"""Datasets through the SDK: upload, inspect and download immutable versions."""

from __future__ import annotations

import builtins
from pathlib import Path
from urllib.parse import quote

from aimass.client._http import HttpSession, Progress
from aimass.entities.datasets import Dataset, DatasetFormat, DatasetVersion


def _seg(value: str | int) -> str:
    return quote(str(value), safe="")


class Datasets:
    """Datasets and their versions in the client's project (``client.datasets``)."""

    def __init__(self, http: HttpSession) -> None:
        self._http = http

    def upload(
        self,
        name: str,
        path: str | Path,
        *,
        format: DatasetFormat | None = None,
        description: str = "",
        progress: Progress | None = None,
    ) -> DatasetVersion:
        """Upload a CSV, Parquet or NPZ file as a new version; creates the dataset if missing."""
        meta: dict[str, object] = {"description": description}
        if format is not None:
            meta["format"] = format
        data = self._http.upload(
            f"/api/v1/datasets/{_seg(name)}/versions",
            Path(path),
            meta,
            params=self._http.scoped(),
            progress=progress,
        )
        return DatasetVersion.model_validate(data)

    def list(self) -> builtins.list[Dataset]:
        """Every dataset in the project."""
        items = self._http.get_all("/api/v1/datasets", self._http.scoped())
        return [Dataset.model_validate(d) for d in items]

    def get(self, name: str) -> Dataset:
        """One dataset by name."""
        data = self._http.get_json(f"/api/v1/datasets/{_seg(name)}", self._http.scoped())
        return Dataset.model_validate(data)

    def versions(self, name: str) -> builtins.list[DatasetVersion]:
        """A dataset's versions."""
        items = self._http.get_all(f"/api/v1/datasets/{_seg(name)}/versions", self._http.scoped())
        return [DatasetVersion.model_validate(v) for v in items]

    def get_version(self, name: str, version: int) -> DatasetVersion:
        """One version with its columns and statistical profile."""
        data = self._http.get_json(
            f"/api/v1/datasets/{_seg(name)}/versions/{_seg(version)}", self._http.scoped()
        )
        return DatasetVersion.model_validate(data)

    def download(
        self, name: str, version: int, dest: str | Path, progress: Progress | None = None
    ) -> Path:
        """Stream a version's file to ``dest`` (a file or a folder), checking its SHA-256."""
        return self._http.download(
            f"/api/v1/datasets/{_seg(name)}/versions/{_seg(version)}/download",
            dest,
            default_name=lambda: self.get_version(name, version).filename,
            params=self._http.scoped(),
            progress=progress,
        )

    def delete(self, name: str) -> None:
        """Delete a dataset with all its versions."""
        self._http.request("DELETE", f"/api/v1/datasets/{_seg(name)}", params=self._http.scoped())
