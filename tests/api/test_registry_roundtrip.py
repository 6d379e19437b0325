"""The registry round trip a user relies on, on SQLite and on PostgreSQL."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests_support import upload

pytestmark = pytest.mark.backend("postgresql")  # slow end to end: one backend (tests/conftest.py)


def test_versions_count_up_alias_moves_search_and_bundle_round_trip(
    http: httpx.Client, model_files: Any, tmp_path: Path, settings: Any
) -> None:
    onnx = upload(
        http, "cancer", model_files.onnx, {"metrics": {"f1": 0.97}, "tags": {"stage": "a"}}
    )
    skops = upload(
        http, "cancer", model_files.skops, {"metrics": {"f1": 0.95}, "tags": {"stage": "b"}}
    )
    pickled = upload(
        http,
        "cancer",
        model_files.pickle,
        {"trusted": True, "metrics": {"f1": 0.93}, "tags": {"stage": "b"}},
    )
    assert [v["version"] for v in (onnx, skops, pickled)] == [1, 2, 3]
    assert [v["flavor"] for v in (onnx, skops, pickled)] == ["onnx", "sklearn", "pickle"]
    assert onnx["signature"]["inputs"][0]["shape"] == [-1, 30]
    assert onnx["signature"]["inputs"][0]["datatype"] == "FP32"
    assert skops["signature"]["inputs"][0]["shape"] == [-1, 30]

    listed = http.get("/api/v1/models/cancer/versions").json()
    assert [v["version"] for v in listed] == [3, 2, 1]

    assert http.put("/api/v1/models/cancer/aliases/production", json={"version": 1}).json()[
        "aliases"
    ] == {"production": 1}
    moved = http.put("/api/v1/models/cancer/aliases/production", json={"version": 2})
    assert moved.json()["aliases"] == {"production": 2}
    assert http.get("/api/v1/models/cancer/versions/production").json()["version"] == 2

    found = http.get("/api/v1/versions", params={"tag": "stage=b"}).json()
    assert sorted(v["version"] for v in found) == [2, 3]
    found = http.get("/api/v1/versions", params={"metric": "f1>=0.95"}).json()
    assert sorted(v["version"] for v in found) == [1, 2]
    found = http.get("/api/v1/versions", params={"flavor": "onnx"}).json()
    assert [v["version"] for v in found] == [1]
    found = http.get("/api/v1/versions", params={"alias": "production"}).json()
    assert [v["version"] for v in found] == [2]

    bundles = []
    for version in (1, 2, 3):
        response = http.get(f"/api/v1/models/cancer/versions/{version}/bundle")
        assert response.status_code == 200
        assert response.headers["content-disposition"].startswith("attachment")
        bundles.append(response.content)

    from tests.conftest import free_port, start_server

    other_settings = settings.model_copy(
        update={
            "home": tmp_path / "second-home",
            "database_url": f"sqlite:///{tmp_path / 'second.db'}",
            "artifacts": str(tmp_path / "second-artifacts"),
            "port": free_port(),
        }
    )
    servers = start_server(other_settings)
    second = next(servers)
    try:
        # The same 60 s as the ``http`` fixture: importing the pickled version starts its
        # sandboxed model host to inspect it, which is seconds on a busy machine.
        with httpx.Client(
            base_url=second.url,
            headers={"Authorization": f"Bearer {second.admin_token}"},
            timeout=60,
        ) as other:
            imported = []
            for bundle, original in zip(bundles, (onnx, skops, pickled), strict=True):
                meta = {"trusted": original["trusted"]}
                response = other.post(
                    "/api/v1/bundles",
                    files={"file": ("b.aimass", bundle)},
                    data={"meta": json.dumps(meta)},
                )
                assert response.status_code == 201, response.text
                imported.append(response.json())
            for got, original in zip(imported, (onnx, skops, pickled), strict=True):
                for field in (
                    "sha256",
                    "size",
                    "signature",
                    "metrics",
                    "tags",
                    "flavor",
                    "version",
                ):
                    assert got[field] == original[field], field
                body = other.get(f"/api/v1/models/cancer/versions/{got['version']}/download")
                assert body.headers["x-aimass-sha256"] == original["sha256"]
    finally:
        servers.close()
