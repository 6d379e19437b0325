"""Running a script job: fetch the user's code, unpack it safely, call its entry function.

The code is a ``.py`` file or a source archive (``.zip``, ``.tar.gz``) the user
uploaded with the job. It is unpacked into the attempt's scratch folder:
archive members with absolute paths, ``..``, links or devices are refused, and
the member count and expanded size are capped.
"""

from __future__ import annotations

import importlib
import sys
import tarfile
import zipfile
from pathlib import Path, PurePosixPath
from typing import Any

from aimass.errors import Unprocessable

MAX_MEMBERS = 10_000
MAX_EXPANDED_BYTES = 512 * 1024 * 1024


def _safe_member(name: str) -> str:
    path = PurePosixPath(name)
    if not name or path.is_absolute() or ".." in path.parts or "\\" in name or "\x00" in name:
        raise Unprocessable(f"the source archive has an unsafe member name {name!r}")
    return name


def unpack_source(archive: Path, dest: Path, name: str | None = None) -> None:
    """Unpack ``archive`` (a .py file, .zip or .tar.gz) into ``dest``; a broken or unsafe
    archive is Unprocessable."""
    try:
        _unpack(archive, dest, name or archive.name)
    except (zipfile.BadZipFile, tarfile.TarError, EOFError, OSError) as exc:
        raise Unprocessable(f"source {name or archive.name!r} is not a readable archive") from exc


def _unpack(archive: Path, dest: Path, name: str) -> None:
    dest.mkdir(parents=True, exist_ok=True)
    if name.endswith(".py"):
        (dest / name).write_bytes(archive.read_bytes())
        return
    if name.endswith(".zip"):
        with zipfile.ZipFile(archive) as zf:
            infos = zf.infolist()
            if len(infos) > MAX_MEMBERS:
                raise Unprocessable(f"the source archive has more than {MAX_MEMBERS} members")
            if sum(i.file_size for i in infos) > MAX_EXPANDED_BYTES:
                raise Unprocessable("the source archive expands to more than 512 MiB")
            for info in infos:
                _safe_member(info.filename)
                mode = info.external_attr >> 16
                if mode and (mode & 0o170000) not in (0o100000, 0o040000):
                    raise Unprocessable(f"the source archive member {info.filename!r} is a link")
            zf.extractall(dest)
        return
    if name.endswith((".tar.gz", ".tgz")):
        with tarfile.open(archive, "r:gz") as tf:
            members = tf.getmembers()
            if len(members) > MAX_MEMBERS:
                raise Unprocessable(f"the source archive has more than {MAX_MEMBERS} members")
            if sum(m.size for m in members) > MAX_EXPANDED_BYTES:
                raise Unprocessable("the source archive expands to more than 512 MiB")
            for member in members:
                _safe_member(member.name)
                if not (member.isfile() or member.isdir()):
                    raise Unprocessable(f"the source archive member {member.name!r} is a link")
            tf.extractall(dest, filter="data")
        return
    raise Unprocessable(f"source {name!r}: upload a .py file, a .zip or a .tar.gz")


def resolve_entry(entry: str) -> tuple[str, str]:
    """``train.py:main`` → (``train``, ``main``); ``pkg.mod:fn`` stays as it is."""
    module, _, function = entry.partition(":")
    if module.endswith(".py"):
        module = module[: -len(".py")]
    return module, function


def run_script(params: dict[str, Any]) -> Any:
    """The target of every script job: fetch and unpack the code, import, call."""
    from aimass.runtime import context

    ctx = context()
    folder = ctx.scratch / "src"
    download = ctx.scratch / "source"
    download.mkdir()
    path = ctx.download_source(download)
    unpack_source(path, folder)
    sys.path.insert(0, str(folder))
    module_name, function_name = resolve_entry(ctx.entry)
    function = getattr(importlib.import_module(module_name), function_name)
    return function(params)
