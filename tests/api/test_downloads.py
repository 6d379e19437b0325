"""Artifacts download as attachments, never rendered (MLflow CVE-2024-27132 class)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest


def test_uploaded_html_dataset_is_never_served_inline(http: httpx.Client, tmp_path: Path) -> None:
    page = tmp_path / "x.csv"
    page.write_text("a,b\n<script>alert(1)</script>,<svg onload=alert(1)>\n")
    response = http.post(
        "/api/v1/datasets/d/versions", files={"file": ("x.csv", page.read_bytes(), "text/html")}
    )
    assert response.status_code == 201, response.text
    download = http.get("/api/v1/datasets/d/versions/1/download")
    assert download.headers["content-type"] == "application/octet-stream"
    assert download.headers["content-disposition"].startswith("attachment")
    assert download.headers["x-content-type-options"] == "nosniff"
    assert download.content == page.read_bytes()


def test_model_download_is_an_attachment_with_its_checksum(
    http: httpx.Client, model_files: Any
) -> None:
    from tests_support import upload

    version = upload(http, "m", model_files.onnx)
    download = http.get("/api/v1/models/m/versions/1/download")
    assert download.status_code == 200
    assert download.headers["content-disposition"].startswith("attachment")
    assert download.headers["x-content-type-options"] == "nosniff"
    assert download.headers["x-aimass-sha256"] == version["sha256"]
    assert download.content == model_files.onnx.read_bytes()


def test_tampered_artifact_is_not_served_as_good(
    http: httpx.Client, model_files: Any, settings: Any
) -> None:
    from tests_support import upload

    upload(http, "m", model_files.onnx)
    stored = [p for p in Path(settings.resolved_artifacts).rglob("*") if p.is_file()]
    assert len(stored) == 1
    stored[0].write_bytes(b"tampered" + stored[0].read_bytes()[8:])
    with pytest.raises((httpx.RemoteProtocolError, httpx.ReadError)):
        http.get("/api/v1/models/m/versions/1/download")
