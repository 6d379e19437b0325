"""A Hugging Face model directory uploaded as a ZIP archive: what is refused, and extraction.

Only data is accepted: JSON configs, tokenizer files and safetensors weights.
Refused, each with a message saying why: a member that would leave the folder
(``..``, absolute, links, devices), Python or native code, ``auto_map`` or
``trust_remote_code`` in any JSON file (that would make transformers import code
shipped with the model), pickled weights (``.bin``, ``.pt``, ...) unless the upload
is trusted, and a JSON value naming a file outside the folder (a tokenizer's
``vocab_file: /etc/passwd``). Nothing here imports torch or transformers.
"""

from __future__ import annotations

import json
import os
import posixpath
import re
import shutil
import stat
import struct
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from aimass.errors import TooLarge, Unprocessable

#: The file a directory may hold to name its task (``{"task": "text-generation"}``).
TASK_FILE = "aimass.json"
MAX_MEMBERS = 2000
MAX_JSON_BYTES = 32 * 1024 * 1024
MAX_EXPANDED_BYTES = 64 * 1024**3
_CHUNK = 1024 * 1024
_PICKLED = frozenset({".bin", ".pt", ".pth", ".ckpt", ".pkl", ".pickle", ".joblib"})
_CODE = frozenset({".py", ".pyc", ".pyo", ".so", ".dll", ".dylib", ".pyd", ".sh", ".ipynb"})
_OTHER_WEIGHTS = frozenset({".h5", ".msgpack", ".ot", ".gguf", ".keras", ".tflite"})
#: The one ONNX graph a directory may hold, served by onnxruntime when ``aimass.json`` says
#: ``"runtime": "onnx"`` (what ``transformers.export_onnx`` writes).
ONNX_MODEL = "model.onnx"
_CODE_KEYS = frozenset({"auto_map", "trust_remote_code", "custom_pipelines"})
# Keys whose string values name files: *_file, *_files, *path, *_dir, *directory, *folder.
_FILE_KEY = re.compile(r"(file|files|path|dir|directory|folder)$", re.IGNORECASE)
# Where the model was saved from: a record transformers writes (often an absolute path on the
# author's machine) and never opens when loading from a folder.
_PROVENANCE_KEYS = frozenset({"_name_or_path", "name_or_path"})
_ERRORS = (zipfile.BadZipFile, zlib.error, EOFError, struct.error, NotImplementedError, OSError)


@dataclass
class ModelDirectory:
    """What the archive holds, once checked: its members under the model folder, parsed JSON."""

    #: The folder inside the archive that holds ``config.json`` ("" for the root).
    root: str
    #: Member names relative to ``root``.
    files: list[str]
    config: dict[str, Any]
    #: Every JSON member parsed, by its name relative to ``root``.
    json_files: dict[str, Any] = field(default_factory=dict)
    pickled: list[str] = field(default_factory=list)

    @property
    def runtime(self) -> str:
        """What runs the weights: ``"onnx"`` when ``aimass.json`` says so, else transformers."""
        value = self.json_files.get(TASK_FILE, {})
        runtime = value.get("runtime") if isinstance(value, dict) else None
        return "onnx" if runtime == "onnx" else "transformers"

    @property
    def task(self) -> str | None:
        """The task named by ``aimass.json``, if the directory has one."""
        value = self.json_files.get(TASK_FILE, {})
        task = value.get("task") if isinstance(value, dict) else None
        return task if isinstance(task, str) else None


def is_model_archive(path: Path) -> bool:
    """Whether ``path`` is a ZIP holding ``config.json`` at its root or under one folder."""
    if not zipfile.is_zipfile(path):
        return False
    try:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
    except _ERRORS:
        return False
    return _root(names) is not None


def read_model_archive(path: Path, trusted: bool) -> ModelDirectory:
    """Check the archive (see the module docstring) and return what it holds."""
    try:
        with zipfile.ZipFile(path) as archive:
            return _read(archive, trusted)
    except _ERRORS as exc:
        raise Unprocessable(f"the model archive is not a readable ZIP file ({exc})") from None


def extract_model_archive(path: Path, target: Path, trusted: bool) -> ModelDirectory:
    """Check the archive and extract its model folder into ``target`` (made here, atomically).

    An existing ``target`` is reused: it was extracted from the same verified bytes.
    """
    with zipfile.ZipFile(path) as archive:
        directory = _read(archive, trusted)
        if target.is_dir():
            return directory
        tmp = target.with_name(f".{target.name}.{os.getpid()}.part")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        try:
            budget = MAX_EXPANDED_BYTES
            for name in directory.files:
                member = archive.getinfo(_join(directory.root, name))
                dest = tmp.joinpath(*name.split("/"))
                dest.parent.mkdir(parents=True, exist_ok=True)
                budget -= _extract(archive, member, dest, budget)
            os.replace(tmp, target)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    return directory


def _read(archive: zipfile.ZipFile, trusted: bool) -> ModelDirectory:
    infos = archive.infolist()
    if len(infos) > MAX_MEMBERS:
        raise Unprocessable(f"the model archive has {len(infos)} members; at most {MAX_MEMBERS}")
    declared = 0
    for info in infos:
        _check_member(info)
        declared += info.file_size
    if declared > MAX_EXPANDED_BYTES:
        raise TooLarge(f"the model archive expands to more than {MAX_EXPANDED_BYTES} bytes")
    names = [info.filename for info in infos if not info.is_dir()]
    root = _root(names)
    if root is None:
        raise Unprocessable(
            "the model archive has no config.json at its root or in its one top folder; "
            "zip a Hugging Face model directory (config.json, *.safetensors, tokenizer files)"
        )
    prefix = f"{root}/" if root else ""
    outside = [n for n in names if not n.startswith(prefix)]
    if outside:
        raise Unprocessable(f"the model archive has a member outside {root!r}: {outside[0]!r}")
    files = [n[len(prefix) :] for n in names]
    pickled: list[str] = []
    graphs: list[str] = []
    has_safetensors = False
    for name in files:
        suffix = PurePosixPath(name).suffix.lower()
        if suffix in _CODE:
            raise Unprocessable(
                f"the model directory holds code ({name!r}); aimass never runs code shipped "
                "with a model (trust_remote_code is off), so remove it"
            )
        if suffix in _PICKLED:
            pickled.append(name)
        elif suffix == ".onnx":
            graphs.append(name)
        elif suffix in _OTHER_WEIGHTS:
            raise Unprocessable(
                f"{name!r}: only safetensors weights are served by the transformers flavor"
            )
        elif suffix == ".safetensors":
            has_safetensors = True
            _check_safetensors(archive, _join(root, name), name)
    if pickled and not trusted:
        raise Unprocessable(
            f"the model directory holds pickled weights ({', '.join(pickled[:3])}): loading "
            "them runs code they contain, so they are refused unless trusted. Save the model "
            "with safetensors (model.save_pretrained(dir, safe_serialization=True)), or have "
            "an admin on all projects mark the upload trusted"
        )
    json_files = {
        name: _read_json(archive, _join(root, name), name)
        for name in files
        if name.endswith(".json")
    }
    for name, value in json_files.items():
        _check_json(name, value)
    config = json_files.get("config.json")
    if not isinstance(config, dict):
        raise Unprocessable("config.json must hold a JSON object")
    directory = ModelDirectory(root, files, config, json_files, pickled)
    if directory.runtime == "onnx":
        if graphs != [ONNX_MODEL]:
            raise Unprocessable(
                f'aimass.json says "runtime": "onnx": the directory must hold one graph named '
                f"{ONNX_MODEL!r} at its top (found {graphs[:3]})"
            )
        if "tokenizer.json" not in files:
            raise Unprocessable("an ONNX model directory needs its tokenizer.json")
    elif graphs:
        raise Unprocessable(
            f"{graphs[0]!r}: only safetensors weights are served by the transformers flavor "
            '(an ONNX graph with its tokenizer needs "runtime": "onnx" in aimass.json)'
        )
    elif not has_safetensors and not pickled:
        raise Unprocessable("the model directory has no weights (*.safetensors)")
    return directory


def _root(names: list[str]) -> str | None:
    if "config.json" in names:
        return ""
    tops = {n.split("/", 1)[0] for n in names}
    if len(tops) == 1:
        top = next(iter(tops))
        if f"{top}/config.json" in names:
            return top
    return None


def _join(root: str, name: str) -> str:
    return f"{root}/{name}" if root else name


def _check_member(info: zipfile.ZipInfo) -> None:
    for name in {info.filename, info.orig_filename}:
        plain = name.rstrip("/") if info.is_dir() else name
        unsafe = (
            not plain
            or "\x00" in plain
            or "\\" in plain
            or plain.startswith("/")
            or (len(plain) >= 2 and plain[1] == ":")
            or any(part in ("", ".", "..") for part in plain.split("/"))
            or posixpath.normpath(plain) != plain
        )
        if unsafe:
            raise Unprocessable(f"the model archive has an unsafe member name {name!r}")
    mode = info.external_attr >> 16
    # No file-type bits (zipfile's writestr writes 0o600 alone): a plain file.
    if not info.is_dir() and stat.S_IFMT(mode) and not stat.S_ISREG(mode):
        raise Unprocessable(f"the model archive member {info.filename!r} is not a plain file")
    if info.flag_bits & 0x1:
        raise Unprocessable(f"the model archive member {info.filename!r} is encrypted")
    if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
        raise Unprocessable(
            f"the model archive member {info.filename!r} must be stored or deflated"
        )


def _read_json(archive: zipfile.ZipFile, member: str, name: str) -> Any:
    info = archive.getinfo(member)
    if info.file_size > MAX_JSON_BYTES:
        raise TooLarge(f"{name!r} is over {MAX_JSON_BYTES} bytes")
    with archive.open(info) as src:
        data = src.read(MAX_JSON_BYTES + 1)
    if len(data) > MAX_JSON_BYTES:
        raise TooLarge(f"{name!r} is over {MAX_JSON_BYTES} bytes")
    try:
        return json.loads(data)
    except ValueError as exc:
        raise Unprocessable(f"{name!r} is not valid JSON: {exc}") from None


def _check_json(name: str, value: Any, where: str = "") -> None:
    """Refuse code hooks and file names that leave the folder, anywhere in one JSON file."""
    if isinstance(value, dict):
        for key, item in value.items():
            here = f"{where}.{key}" if where else str(key)
            if key in _CODE_KEYS and item not in (None, False, {}, []):
                raise Unprocessable(
                    f"{name!r} sets {here!r}: it asks transformers to import code shipped "
                    "with the model (trust_remote_code), which aimass never does"
                )
            if isinstance(key, str) and _FILE_KEY.search(key) and key not in _PROVENANCE_KEYS:
                for text in item if isinstance(item, list) else [item]:
                    if isinstance(text, str) and _leaves_folder(text):
                        raise Unprocessable(
                            f"{name!r} sets {here!r} to {text[:200]!r}, a file outside the "
                            "model directory; every file a model uses must be inside it"
                        )
            _check_json(name, item, here)
    elif isinstance(value, list):
        for i, item in enumerate(value):
            _check_json(name, item, f"{where}[{i}]")


def _leaves_folder(text: str) -> bool:
    if not text:
        return False
    parts = re.split(r"[/\\]", text)
    return (
        text.startswith(("/", "~", "\\"))
        or (len(text) >= 2 and text[1] == ":")
        or "://" in text
        or ".." in parts
        or "\x00" in text
    )


def _check_safetensors(archive: zipfile.ZipFile, member: str, name: str) -> None:
    """The header must be a safetensors JSON header (8-byte length, then JSON)."""
    info = archive.getinfo(member)
    with archive.open(info) as src:
        head = src.read(8)
        if len(head) < 8:
            raise Unprocessable(f"{name!r} is not a safetensors file (too short)")
        (length,) = struct.unpack("<Q", head)
        if length > min(info.file_size - 8, 100 * 1024 * 1024):
            raise Unprocessable(f"{name!r} is not a safetensors file (bad header length)")
        header = src.read(length)
    try:
        parsed = json.loads(header)
    except ValueError:
        raise Unprocessable(f"{name!r} is not a safetensors file (bad header)") from None
    if not isinstance(parsed, dict):
        raise Unprocessable(f"{name!r} is not a safetensors file (bad header)")


def _extract(archive: zipfile.ZipFile, info: zipfile.ZipInfo, dest: Path, budget: int) -> int:
    size = 0
    with archive.open(info) as src, dest.open("xb") as dst:
        while chunk := src.read(_CHUNK):
            size += len(chunk)
            if size > budget or size > info.file_size:
                raise TooLarge(f"{info.filename!r} expands to more than it declares")
            dst.write(chunk)
    return size


#: Every member gets this time stamp, so the same folder always zips to the same bytes.
_EPOCH = (2020, 1, 1, 0, 0, 0)


def zip_folder(folder: Path, target: Path, extra: dict[str, bytes] | None = None) -> Path:
    """Zip the files of ``folder`` (and ``extra``: name to bytes) at the archive's root.

    Stored (weights barely compress) and time-stamped alike, so the same files
    always make the same bytes.
    """
    with zipfile.ZipFile(target, "w", zipfile.ZIP_STORED) as archive:
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                info = zipfile.ZipInfo(path.relative_to(folder).as_posix(), _EPOCH)
                info.external_attr = (stat.S_IFREG | 0o644) << 16
                with path.open("rb") as src, archive.open(info, "w") as dst:
                    shutil.copyfileobj(src, dst, 1024 * 1024)
        for name, data in (extra or {}).items():
            info = zipfile.ZipInfo(name, _EPOCH)
            info.external_attr = (stat.S_IFREG | 0o644) << 16
            archive.writestr(info, data)
    return target
