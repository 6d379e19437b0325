"""The artifact store: streamed, checksummed, atomic writes under server-made keys."""

from __future__ import annotations

import contextlib
import errno
import hashlib
import posixpath
import time
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import IO, Any

from aimass.errors import ChecksumMismatch, InsufficientStorage, InvalidInput

CHUNK = 1024 * 1024
_NO_SPACE = (errno.ENOSPC, errno.EDQUOT)


def out_of_space(exc: BaseException) -> bool:
    """True when ``exc`` is a write refused for lack of space (a full disk, a quota)."""
    return isinstance(exc, OSError) and exc.errno in _NO_SPACE


def store_full(where: str) -> InsufficientStorage:
    """The 507 for a write to ``where`` (a store's name) that ran out of space."""
    return InsufficientStorage(
        f"{where} is out of space; nothing was kept from this write, and earlier files "
        "are intact. Free space there (or grow it) and send it again"
    )


@dataclass(frozen=True)
class StoredArtifact:
    """Where bytes were written, with their checksum and size."""

    key: str
    sha256: str
    size: int


def _check_key(key: str) -> str:
    parts = key.split("/")
    if not key or key.startswith("/") or any(p in ("", ".", "..") for p in parts):
        raise InvalidInput("invalid artifact key")
    return key


class ArtifactStore:
    """Bytes under keys in one root: a local folder or any fsspec URL (``s3://bucket/prefix``).

    ``put`` writes to a temporary key and moves it into place only once all bytes
    are written and hashed, so a crash never leaves a partial file under a real key.
    ``open`` verifies the sha256 as it streams and raises at the end on a mismatch.
    """

    def __init__(self, root: str, **storage_options: Any) -> None:
        import fsspec

        self.fs, self.root = fsspec.core.url_to_fs(root, **storage_options)
        self.fs.makedirs(self.root, exist_ok=True)

    def _path(self, key: str) -> str:
        return posixpath.join(self.root, _check_key(key))

    def new_key(self, *parts: str) -> str:
        """A fresh, unique key under ``parts`` (each already validated by the caller)."""
        return "/".join([*parts, uuid.uuid4().hex])

    def put(self, key: str, chunks: Iterable[bytes]) -> StoredArtifact:
        """Stream ``chunks`` to ``key`` atomically, returning its sha256 and size."""
        final = self._path(key)
        tmp = self._path(f"tmp/{uuid.uuid4().hex}")
        self.fs.makedirs(posixpath.dirname(tmp), exist_ok=True)
        digest = hashlib.sha256()
        size = 0
        try:
            with self.fs.open(tmp, "wb") as out:
                for chunk in chunks:
                    digest.update(chunk)
                    size += len(chunk)
                    out.write(chunk)
            self.fs.makedirs(posixpath.dirname(final), exist_ok=True)
            self.fs.mv(tmp, final)
        except BaseException as exc:
            if self.fs.exists(tmp):
                self.fs.rm(tmp)
            if out_of_space(exc):
                raise store_full("the artifact store (AIMASS_ARTIFACTS)") from exc
            raise
        return StoredArtifact(key=key, sha256=digest.hexdigest(), size=size)

    def put_file(self, key: str, fileobj: IO[bytes]) -> StoredArtifact:
        """Stream an open binary file to ``key``."""
        return self.put(key, iter(lambda: fileobj.read(CHUNK), b""))

    def open(self, key: str, sha256: str | None = None) -> Iterator[bytes]:
        """Stream the bytes under ``key``; with ``sha256`` given, verify them at the end."""
        # The last chunk is held back until the digest is checked, so a reader of a
        # corrupted artifact never receives a complete body.
        digest = hashlib.sha256()
        pending = b""
        with self.fs.open(self._path(key), "rb") as src:
            while chunk := src.read(CHUNK):
                digest.update(chunk)
                if pending:
                    yield pending
                pending = chunk
        if sha256 is not None and digest.hexdigest() != sha256:
            raise ChecksumMismatch("stored artifact does not match its checksum")
        if pending:
            yield pending

    def read_to(self, key: str, sha256: str, out: IO[bytes]) -> None:
        """Copy the verified bytes under ``key`` into ``out``."""
        for chunk in self.open(key, sha256):
            out.write(chunk)

    def exists(self, key: str) -> bool:
        """True when bytes are stored under ``key``."""
        return bool(self.fs.exists(self._path(key)))

    def delete(self, key: str) -> None:
        """Remove ``key`` if present."""
        path = self._path(key)
        if self.fs.exists(path):
            self.fs.rm(path, recursive=True)

    def list_keys(self, prefix: str) -> dict[str, float]:
        """Every key under ``prefix`` with its modification time (seconds since the epoch)."""
        root = self._path(prefix)
        if not self.fs.exists(root):
            return {}
        found: dict[str, float] = {}
        base = self.root.rstrip("/") + "/"
        for path, info in self.fs.find(root, detail=True).items():
            key = path[len(base) :] if path.startswith(base) else path
            found[key] = _mtime(info)
        return found

    def sweep_tmp(self, min_age_s: float) -> list[str]:
        """Remove unfinished writes untouched for ``min_age_s`` seconds; their keys.

        Several servers may share this store: a write in flight on another one is
        younger than that (each chunk written touches it), so it stays.
        """
        removed = self.stale_tmp(min_age_s)
        for key in removed:
            self.discard(key)
        return removed

    def stale_tmp(self, min_age_s: float) -> list[str]:
        """The unfinished writes untouched for ``min_age_s`` seconds."""
        cutoff = time.time() - min_age_s
        return [key for key, modified in self.list_keys("tmp").items() if modified < cutoff]

    def discard(self, key: str) -> None:
        """Remove one file if it is there (an unfinished write: no verification needed)."""
        with contextlib.suppress(FileNotFoundError):
            self.fs.rm(self._path(key))


def _mtime(info: dict[str, object]) -> float:
    """A file's modification time from fsspec's info (local ``mtime``, S3 ``LastModified``).

    Unknown times read as now, so a sweep never takes bytes whose age it cannot tell.
    """
    value = info.get("mtime", info.get("LastModified", info.get("last_modified")))
    if isinstance(value, (int, float)):
        return float(value)
    timestamp = getattr(value, "timestamp", None)
    return float(timestamp()) if callable(timestamp) else time.time()
