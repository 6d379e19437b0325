"""Artifact downloads: always attachments, never sniffed, checksum in a header."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

from starlette.background import BackgroundTask
from starlette.responses import StreamingResponse


def attachment_headers(filename: str, size: int, sha256: str | None) -> dict[str, str]:
    """Headers that make a browser save the bytes rather than render them (size -1: unknown)."""
    headers = {
        "Content-Disposition": f"attachment; filename*=UTF-8''{quote(filename)}",
        "Content-Security-Policy": "default-src 'none'; sandbox",
        "Cache-Control": "no-store",
    }
    if size >= 0:
        headers["Content-Length"] = str(size)
    if sha256:
        headers["X-Aimass-Sha256"] = sha256
    return headers


def stream_attachment(
    chunks: Iterator[bytes], filename: str, size: int, sha256: str | None
) -> StreamingResponse:
    """A streamed ``application/octet-stream`` attachment."""
    return StreamingResponse(
        chunks,
        media_type="application/octet-stream",
        headers=attachment_headers(filename, size, sha256),
    )


def stream_temp_file(path: Path, filename: str) -> StreamingResponse:
    """Stream a server-made temporary file as an attachment, deleting it afterwards."""

    def chunks() -> Iterator[bytes]:
        with path.open("rb") as src:
            while chunk := src.read(1024 * 1024):
                yield chunk

    digest = hashlib.sha256()
    with path.open("rb") as src:
        while block := src.read(1024 * 1024):
            digest.update(block)
    return StreamingResponse(
        chunks(),
        media_type="application/octet-stream",
        headers=attachment_headers(filename, path.stat().st_size, digest.hexdigest()),
        background=BackgroundTask(path.unlink, missing_ok=True),
    )
