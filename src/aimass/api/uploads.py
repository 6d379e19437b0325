"""Receiving a multipart upload into a local spool file, counted and cleaned up."""

from __future__ import annotations

import shutil
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from fastapi import Request
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile

from aimass.artifacts.store import out_of_space, store_full
from aimass.errors import InvalidInput
from aimass.validation import parse_json

MAX_META_BYTES = 256 * 1024
M = TypeVar("M", bound=BaseModel)
T = TypeVar("T")


@dataclass(frozen=True)
class SpooledUpload:
    """An upload fully received: its local path, the client's file name, its meta JSON."""

    path: Path
    filename: str
    meta: str | None


#: How the upload spool is named in an out-of-space refusal.
SPOOL = "the upload spool (AIMASS_HOME/spool)"


def _copy(src: UploadFile, dest: Path) -> None:
    try:
        with dest.open("xb") as out:
            shutil.copyfileobj(src.file, out, 1024 * 1024)
    except OSError as exc:
        dest.unlink(missing_ok=True)
        if out_of_space(exc):
            raise store_full(SPOOL) from exc
        raise


@asynccontextmanager
async def spooled_upload(
    request: Request, spool_dir: Path, file_field: str = "file", meta_field: str = "meta"
) -> AsyncIterator[SpooledUpload]:
    """Parse the file field and an optional JSON meta field; the spool file is deleted on exit."""
    content_type = request.headers.get("content-type", "")
    if not content_type.startswith("multipart/form-data"):
        raise InvalidInput(
            f"send the upload as multipart/form-data with a '{file_field}' field "
            f"and an optional '{meta_field}' JSON field"
        )
    form = await request.form(max_files=1, max_fields=4, max_part_size=MAX_META_BYTES)
    dest = spool_dir / uuid.uuid4().hex
    try:
        upload = form.get(file_field)
        if not isinstance(upload, UploadFile):
            raise InvalidInput(f"the multipart body has no '{file_field}' field holding a file")
        if not upload.filename:
            raise InvalidInput("the uploaded file has no file name")
        meta = form.get(meta_field)
        if meta is not None and not isinstance(meta, str):
            raise InvalidInput(f"'{meta_field}' must be a JSON text field, not a file")
        spool_dir.mkdir(parents=True, exist_ok=True)
        await run_in_threadpool(_copy, upload, dest)
        yield SpooledUpload(path=dest, filename=upload.filename, meta=meta)
    finally:
        await form.close()
        dest.unlink(missing_ok=True)


async def handle_upload(
    request: Request,
    spool_dir: Path,
    meta_model: type[M],
    call: Callable[[SpooledUpload, M], T],
) -> T:
    """Receive an upload, validate its ``meta`` JSON, and run ``call`` on both in a thread."""
    async with spooled_upload(request, spool_dir) as upload:
        spec = parse_json(meta_model, upload.meta, "meta")
        return await run_in_threadpool(call, upload, spec)
