"""The registry through the SDK: models, versions, aliases, search and bundles."""

from __future__ import annotations

import builtins
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import quote

from aimass.client._http import HttpSession, Progress
from aimass.entities.evaluation import Comparison, Evaluation
from aimass.entities.registry import Model, ModelVersion, VersionStatus

if TYPE_CHECKING:
    import numpy as np

    from aimass.entities.signature import Signature

Ref = int | str
"""A version number, or an alias name such as ``production``."""


def _seg(value: Ref) -> str:
    """One URL path segment, escaped so a name can never change the route."""
    return quote(str(value), safe="")


def _signature_json(signature: Signature | Mapping[str, object] | None) -> object:
    if signature is None or isinstance(signature, Mapping):
        return signature
    return signature.model_dump(mode="json")


def _tag_params(tags: Mapping[str, str] | None) -> list[str] | None:
    return [f"{k}={v}" for k, v in tags.items()] if tags else None


class Models:
    """Models and their versions in the client's project (``client.models``)."""

    def __init__(self, http: HttpSession) -> None:
        self._http = http

    # -- models ---------------------------------------------------------------

    def create(
        self, name: str, description: str = "", tags: Mapping[str, str] | None = None
    ) -> Model:
        """Create an empty model; :class:`aimass.errors.Conflict` if it exists."""
        body = {"name": name, "description": description, "tags": dict(tags or {})}
        answer = self._http.request(
            "POST", "/api/v1/models", params=self._http.scoped(), json_body=body
        )
        return Model.model_validate(answer.json())

    def list(
        self,
        name: str | None = None,
        tag: Mapping[str, str] | None = None,
        flavor: str | None = None,
    ) -> builtins.list[Model]:
        """Every model, optionally filtered by name substring, tags and flavor."""
        params = self._http.scoped({"name": name, "tag": _tag_params(tag), "flavor": flavor})
        return [Model.model_validate(m) for m in self._http.get_all("/api/v1/models", params)]

    def get(self, name: str) -> Model:
        """One model by name."""
        data = self._http.get_json(f"/api/v1/models/{_seg(name)}", self._http.scoped())
        return Model.model_validate(data)

    def update(
        self,
        name: str,
        *,
        description: str | None = None,
        tags: Mapping[str, str] | None = None,
    ) -> Model:
        """Change a model's description and/or replace its tags."""
        body: dict[str, object] = {}
        if description is not None:
            body["description"] = description
        if tags is not None:
            body["tags"] = dict(tags)
        answer = self._http.request(
            "PATCH", f"/api/v1/models/{_seg(name)}", params=self._http.scoped(), json_body=body
        )
        return Model.model_validate(answer.json())

    def delete(self, name: str) -> None:
        """Delete a model with all its versions and their bytes."""
        self._http.request("DELETE", f"/api/v1/models/{_seg(name)}", params=self._http.scoped())

    # -- versions -------------------------------------------------------------

    def upload(
        self,
        name: str,
        path: str | Path,
        *,
        flavor: str | None = None,
        trusted: bool = False,
        signature: Signature | Mapping[str, object] | None = None,
        metrics: Mapping[str, float] | None = None,
        tags: Mapping[str, str] | None = None,
        description: str = "",
        progress: Progress | None = None,
    ) -> ModelVersion:
        """Upload a model file as a new version (streamed); creates the model if missing.

        A directory (a Hugging Face model: ``config.json``, ``*.safetensors``, tokenizer
        files) is zipped first and uploaded as ``<folder>.zip`` (the transformers flavor).
        """
        if Path(path).is_dir():
            with tempfile.TemporaryDirectory(prefix="aimass-upload-") as tmp:
                archive = _zip_folder(Path(path), Path(tmp) / f"{Path(path).resolve().name}.zip")
                return self.upload(
                    name, archive, flavor=flavor, trusted=trusted, signature=signature,
                    metrics=metrics, tags=tags, description=description, progress=progress,
                )  # fmt: skip
        meta: dict[str, object] = {"trusted": trusted, "description": description}
        if flavor is not None:
            meta["flavor"] = flavor
        if signature is not None:
            meta["signature"] = _signature_json(signature)
        if metrics:
            meta["metrics"] = dict(metrics)
        if tags:
            meta["tags"] = dict(tags)
        data = self._http.upload(
            f"/api/v1/models/{_seg(name)}/versions",
            Path(path),
            meta,
            params=self._http.scoped(),
            progress=progress,
        )
        return ModelVersion.model_validate(data)

    def log(
        self,
        name: str,
        model: object,
        *,
        example: np.ndarray | None = None,
        signature: Signature | None = None,
        metrics: Mapping[str, float] | None = None,
        tags: Mapping[str, str] | None = None,
        description: str = "",
        progress: Progress | None = None,
    ) -> ModelVersion:
        """Serialize an in-memory sklearn, torch or ONNX model safely and upload it."""
        # Imported here: serializing pulls in numpy and the model's library.
        from aimass.flavors.serialize import serialize_model

        with tempfile.TemporaryDirectory(prefix="aimass-log-") as tmp:
            file, flavor = serialize_model(model, Path(tmp), signature=signature, example=example)
            return self.upload(
                name,
                file,
                flavor=flavor,
                signature=signature,
                metrics=metrics,
                tags=tags,
                description=description,
                progress=progress,
            )

    def versions(
        self, name: str, status: VersionStatus | None = None
    ) -> builtins.list[ModelVersion]:
        """A model's versions, newest first."""
        params = self._http.scoped({"status": status})
        items = self._http.get_all(f"/api/v1/models/{_seg(name)}/versions", params)
        return [ModelVersion.model_validate(v) for v in items]

    def get_version(self, name: str, ref: Ref) -> ModelVersion:
        """One version by number or alias."""
        data = self._http.get_json(self._version_path(name, ref), self._http.scoped())
        return ModelVersion.model_validate(data)

    def update_version(
        self,
        name: str,
        ref: Ref,
        *,
        description: str | None = None,
        tags: Mapping[str, str | None] | None = None,
        metrics: Mapping[str, float] | None = None,
        status: VersionStatus | None = None,
    ) -> ModelVersion:
        """Change a version's metadata; a tag set to None is removed."""
        body: dict[str, object] = {}
        if description is not None:
            body["description"] = description
        if tags is not None:
            body["tags"] = dict(tags)
        if metrics is not None:
            body["metrics"] = dict(metrics)
        if status is not None:
            body["status"] = status
        answer = self._http.request(
            "PATCH", self._version_path(name, ref), params=self._http.scoped(), json_body=body
        )
        return ModelVersion.model_validate(answer.json())

    def archive_version(self, name: str, ref: Ref) -> ModelVersion:
        """Mark a version archived (kept, but out of the way)."""
        return self.update_version(name, ref, status="archived")

    def delete_version(self, name: str, ref: Ref) -> None:
        """Delete one version and its bytes."""
        self._http.request("DELETE", self._version_path(name, ref), params=self._http.scoped())

    def download(
        self, name: str, ref: Ref, dest: str | Path, progress: Progress | None = None
    ) -> Path:
        """Stream a version's file to ``dest`` (a file or a folder), checking its SHA-256."""
        return self._http.download(
            f"{self._version_path(name, ref)}/download",
            dest,
            default_name=lambda: self.get_version(name, ref).filename,
            params=self._http.scoped(),
            progress=progress,
        )

    # -- aliases --------------------------------------------------------------

    def set_alias(self, name: str, alias: str, version: int) -> Model:
        """Point ``alias`` at ``version`` (moving it if it pointed elsewhere)."""
        answer = self._http.request(
            "PUT",
            f"/api/v1/models/{_seg(name)}/aliases/{_seg(alias)}",
            params=self._http.scoped(),
            json_body={"version": version},
        )
        return Model.model_validate(answer.json())

    def delete_alias(self, name: str, alias: str) -> None:
        """Remove an alias; the version it pointed at stays."""
        self._http.request(
            "DELETE",
            f"/api/v1/models/{_seg(name)}/aliases/{_seg(alias)}",
            params=self._http.scoped(),
        )

    # -- evaluations ----------------------------------------------------------

    def evaluations(self, name: str, ref: Ref) -> builtins.list[Evaluation]:
        """The evaluation reports of one version (number or alias), newest first."""
        items = self._http.get_json(
            f"{self._version_path(name, ref)}/evaluations", self._http.scoped()
        )
        return [Evaluation.model_validate(e) for e in items]

    def compare(self, name: str, versions: Sequence[Ref], dataset: str) -> Comparison:
        """Versions side by side on one dataset's evaluations, with the best one per metric."""
        params = self._http.scoped(
            {"versions": ",".join(str(v) for v in versions), "dataset": dataset}
        )
        data = self._http.get_json(f"/api/v1/models/{_seg(name)}/compare", params)
        return Comparison.model_validate(data)

    # -- search and bundles ---------------------------------------------------

    def search(
        self,
        name: str | None = None,
        tags: Mapping[str, str] | None = None,
        flavor: str | None = None,
        metrics: Sequence[str] | None = None,
        status: VersionStatus | None = None,
        alias: str | None = None,
    ) -> builtins.list[ModelVersion]:
        """Versions across models; ``metrics`` are filters like ``"accuracy>=0.9"``."""
        params = self._http.scoped(
            {
                "name": name,
                "tag": _tag_params(tags),
                "flavor": flavor,
                "metric": list(metrics) if metrics else None,
                "status": status,
                "alias": alias,
            }
        )
        return [
            ModelVersion.model_validate(v) for v in self._http.get_all("/api/v1/versions", params)
        ]

    def export(
        self, name: str, ref: Ref, dest: str | Path, progress: Progress | None = None
    ) -> Path:
        """Save a version as a portable bundle file (``dest`` may be a folder)."""
        return self._http.download(
            f"{self._version_path(name, ref)}/bundle",
            dest,
            default_name=lambda: f"{name}-v{self.get_version(name, ref).version}.aimass",
            params=self._http.scoped(),
            progress=progress,
        )

    def import_bundle(
        self,
        path: str | Path,
        *,
        name: str | None = None,
        trusted: bool = False,
        progress: Progress | None = None,
    ) -> ModelVersion:
        """Upload a bundle made by :meth:`export`, optionally under another model name."""
        meta: dict[str, object] = {"trusted": trusted}
        if name is not None:
            meta["name"] = name
        data = self._http.upload(
            "/api/v1/bundles", Path(path), meta, params=self._http.scoped(), progress=progress
        )
        return ModelVersion.model_validate(data)

    @staticmethod
    def _version_path(name: str, ref: Ref) -> str:
        return f"/api/v1/models/{_seg(name)}/versions/{_seg(ref)}"


def _zip_folder(folder: Path, target: Path) -> Path:
    """Zip a model folder's plain files (stored: weights barely compress); links are refused."""
    import zipfile

    with zipfile.ZipFile(target, "w", zipfile.ZIP_STORED) as archive:
        for item in sorted(folder.rglob("*")):
            if item.is_symlink():
                raise ValueError(f"{item} is a link; copy the file into the folder instead")
            if item.is_file():
                archive.write(item, item.relative_to(folder).as_posix())
    return target
