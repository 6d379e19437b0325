"""Writing bundles, and extracting untrusted ones without letting them escape their folder.

A bundle is a ZIP file with exactly two members: ``manifest.json`` (deflated) and
``artifact/<filename>`` (stored). Reading refuses anything else, so zip-slip,
links, devices, duplicate names and zip bombs never reach the filesystem.
"""

from __future__ import annotations

import hashlib
import posixpath
import stat
import struct
import zipfile
import zlib
from collections.abc import Iterable
from pathlib import Path
from typing import IO

from pydantic import ValidationError

from aimass.artifacts.names import validate_filename
from aimass.bundles.manifest import ARTIFACT_DIR, MANIFEST_NAME, BundleManifest
from aimass.errors import ChecksumMismatch, InvalidInput, TooLarge, Unprocessable

CHUNK_SIZE = 1024 * 1024
MAX_MANIFEST_BYTES = 1024 * 1024
_FILE_MODE = (stat.S_IFREG | 0o644) << 16
_ALLOWED_COMPRESSION = (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED)
# What a corrupt or hostile archive makes zipfile and zlib raise while reading.
_ZIP_ERRORS = (zipfile.BadZipFile, zlib.error, EOFError, struct.error, NotImplementedError)


def write_bundle(
    manifest: BundleManifest, artifact_chunks: Iterable[bytes], out: IO[bytes]
) -> None:
    """Write a bundle to ``out``, streaming the artifact; raise ChecksumMismatch on a bad sum."""
    date_time = _zip_date_time(manifest)
    with zipfile.ZipFile(out, mode="w") as zf:
        info = zipfile.ZipInfo(MANIFEST_NAME, date_time=date_time)
        info.compress_type = zipfile.ZIP_DEFLATED
        info.external_attr = _FILE_MODE
        zf.writestr(info, manifest.model_dump_json(indent=2).encode())

        info = zipfile.ZipInfo(manifest.artifact_member, date_time=date_time)
        info.compress_type = zipfile.ZIP_STORED
        info.external_attr = _FILE_MODE
        # A size hint so zipfile picks ZIP64 headers when the artifact needs them.
        info.file_size = manifest.size
        digest = hashlib.sha256()
        size = 0
        with zf.open(info, mode="w") as dst:
            for chunk in artifact_chunks:
                digest.update(chunk)
                size += len(chunk)
                dst.write(chunk)
    if size != manifest.size or digest.hexdigest() != manifest.sha256:
        raise ChecksumMismatch(
            f"the artifact of {manifest.model} version {manifest.version} does not match "
            "its recorded size and checksum"
        )


def read_bundle(
    path: Path, dest_dir: Path, *, max_expanded_bytes: int, max_members: int = 8
) -> tuple[BundleManifest, Path]:
    """Check and extract a bundle's artifact into ``dest_dir``; return its manifest and path.

    ``dest_dir`` must be a fresh empty folder; only ``dest_dir/<filename>`` is ever
    written, and it is deleted again if anything is wrong.
    """
    try:
        zf = zipfile.ZipFile(path)
    except (*_ZIP_ERRORS, ValueError):
        raise Unprocessable("the bundle is not a valid ZIP file") from None
    with zf:
        manifest_info, artifact_info = _check_members(zf, max_members, max_expanded_bytes)
        manifest = _read_manifest(zf, manifest_info)
        name = artifact_info.filename[len(ARTIFACT_DIR) + 1 :]
        if name != manifest.filename:
            raise Unprocessable(
                f"the bundle's artifact is named {name!r} but its manifest says "
                f"{manifest.filename!r}"
            )
        if manifest.size + manifest_info.file_size > max_expanded_bytes:
            raise TooLarge(
                f"the bundle expands to more than {max_expanded_bytes} bytes; raise "
                "AIMASS_MAX_UPLOAD_BYTES for larger bundles"
            )
        if artifact_info.file_size != manifest.size:
            raise Unprocessable("the bundle's artifact size does not match its manifest")
        budget = max_expanded_bytes - manifest_info.file_size
        target = dest_dir / name
        _extract(zf, artifact_info, target, manifest, budget, max_expanded_bytes)
    return manifest, target


def _check_members(
    zf: zipfile.ZipFile, max_members: int, max_expanded_bytes: int
) -> tuple[zipfile.ZipInfo, zipfile.ZipInfo]:
    """Refuse every member shape but ``manifest.json`` plus one ``artifact/<name>``."""
    infos = zf.infolist()
    if len(infos) > max_members:
        raise Unprocessable(f"the bundle has {len(infos)} members; at most {max_members} allowed")
    seen: set[str] = set()
    manifest_info: zipfile.ZipInfo | None = None
    artifact_info: zipfile.ZipInfo | None = None
    declared = 0
    for info in infos:
        name = info.filename
        _check_member_name(info)
        if name in seen:
            raise Unprocessable(f"the bundle has two members named {name!r}")
        seen.add(name)
        _check_member_kind(info)
        declared += info.file_size
        if name == MANIFEST_NAME:
            manifest_info = info
        elif name.startswith(f"{ARTIFACT_DIR}/") and name.count("/") == 1:
            if artifact_info is not None:
                raise Unprocessable("the bundle holds more than one artifact")
            artifact_info = info
        else:
            raise Unprocessable(
                f"the bundle has an unexpected member {name!r}; a bundle holds only "
                f"{MANIFEST_NAME} and {ARTIFACT_DIR}/<filename>"
            )
    if manifest_info is None:
        raise Unprocessable(f"the bundle has no {MANIFEST_NAME}")
    if artifact_info is None:
        raise Unprocessable("the bundle has no artifact")
    if declared > max_expanded_bytes:
        raise TooLarge(
            f"the bundle expands to more than {max_expanded_bytes} bytes; raise "
            "AIMASS_MAX_UPLOAD_BYTES for larger bundles"
        )
    return manifest_info, artifact_info


def _check_member_name(info: zipfile.ZipInfo) -> None:
    # zipfile cuts names at NUL and may rewrite separators; check what the archive says too.
    for name in {info.filename, info.orig_filename}:
        unsafe = (
            not name
            or "\x00" in name
            or "\\" in name
            or name.startswith("/")
            or (len(name) >= 2 and name[1] == ":")
            or any(part in ("", ".", "..") for part in name.split("/"))
            or posixpath.normpath(name) != name
        )
        if unsafe:
            raise Unprocessable(f"the bundle has an unsafe member name {name!r}")


def _check_member_kind(info: zipfile.ZipInfo) -> None:
    mode = info.external_attr >> 16
    if info.is_dir() or (mode and not stat.S_ISREG(mode)):
        raise Unprocessable(f"the bundle member {info.filename!r} is not a plain file")
    if info.flag_bits & 0x1:
        raise Unprocessable(f"the bundle member {info.filename!r} is encrypted")
    if info.compress_type not in _ALLOWED_COMPRESSION:
        raise Unprocessable(f"the bundle member {info.filename!r} must be stored or deflated")


def _read_manifest(zf: zipfile.ZipFile, info: zipfile.ZipInfo) -> BundleManifest:
    if info.file_size > MAX_MANIFEST_BYTES:
        raise TooLarge(f"the bundle's {MANIFEST_NAME} is over {MAX_MANIFEST_BYTES} bytes")
    try:
        with zf.open(info) as src:
            data = src.read(MAX_MANIFEST_BYTES + 1)
    except _ZIP_ERRORS:
        raise Unprocessable(f"the bundle's {MANIFEST_NAME} is corrupt") from None
    if len(data) > MAX_MANIFEST_BYTES:
        raise TooLarge(f"the bundle's {MANIFEST_NAME} is over {MAX_MANIFEST_BYTES} bytes")
    try:
        manifest = BundleManifest.model_validate_json(data)
    except ValidationError as exc:
        raise Unprocessable(f"the bundle's {MANIFEST_NAME} is invalid: {_describe(exc)}") from None
    try:
        validate_filename(manifest.filename)
    except InvalidInput as exc:
        raise Unprocessable(exc.message) from None
    return manifest


def _describe(exc: ValidationError) -> str:
    problems = []
    for error in exc.errors(include_url=False, include_input=False, include_context=False)[:5]:
        where = ".".join(str(part) for part in error["loc"])
        problems.append(f"{where}: {error['msg']}" if where else error["msg"])
    return "; ".join(problems)


def _extract(
    zf: zipfile.ZipFile,
    info: zipfile.ZipInfo,
    target: Path,
    manifest: BundleManifest,
    budget: int,
    max_expanded_bytes: int,
) -> None:
    """Stream one member to ``target``, counting real bytes; delete it on any failure."""
    digest = hashlib.sha256()
    size = 0
    # Exclusive create: never follows or overwrites anything already at target.
    with target.open("xb") as dst:
        try:
            try:
                with zf.open(info) as src:
                    while chunk := src.read(CHUNK_SIZE):
                        size += len(chunk)
                        # Declared sizes can lie; the bytes that actually come out cannot.
                        if size > budget:
                            raise TooLarge(
                                f"the bundle expands to more than {max_expanded_bytes} "
                                "bytes; raise AIMASS_MAX_UPLOAD_BYTES for larger bundles"
                            )
                        if size > manifest.size:
                            raise Unprocessable(
                                "the bundle's artifact is larger than its manifest says"
                            )
                        digest.update(chunk)
                        dst.write(chunk)
            except _ZIP_ERRORS:
                raise Unprocessable("the bundle's artifact is corrupt") from None
            if size != manifest.size or digest.hexdigest() != manifest.sha256:
                raise Unprocessable(
                    "the bundle's artifact does not match the size and sha256 in its manifest"
                )
        except BaseException:
            dst.close()
            target.unlink(missing_ok=True)
            raise


def _zip_date_time(manifest: BundleManifest) -> tuple[int, int, int, int, int, int]:
    at = manifest.exported_at
    if at.year < 1980 or at.year > 2107:  # what a ZIP header can hold
        return (1980, 1, 1, 0, 0, 0)
    return (at.year, at.month, at.day, at.hour, at.minute, at.second)
