"""A memory-mapped form of a cached ONNX model, so a node's processes share its weights.

An ONNX file keeps its weights inside the protobuf, so every process that opens it
reads them onto its own heap, and onnxruntime then copies the large MatMul/Gemm
weights once more into a prepacked layout: two workers serving twenty 100 MB
models hold 4 GB. Beside the verified copy in the node's model cache this module
writes, once per node, the model as onnxruntime optimized it, with every
initializer and every prepacked weight in one page-aligned external-data file
(``session.save_external_prepacked_constant_initializers``). onnxruntime maps that
file read-only, so the pages are the kernel's page cache: every process (and every
deployment) that opens the same model shares one copy, and no process pays the
prepacking again.

The prepacked layout depends on onnxruntime's version and on the CPU's
instruction sets, so the folder's name carries both. The file is written only by
this server (never uploaded): the external-data refusal in :mod:`.onnx` is about
uploaded models and still applies to the source.
"""

from __future__ import annotations

import fcntl
import hashlib
import logging
import os
import platform
import shutil
import uuid
from functools import cache
from pathlib import Path

log = logging.getLogger("aimass.serving")

#: The model and data file names inside a mapped folder.
MODEL = "model.onnx"
DATA = "model.data"
#: Initializers at least this large go to the mapped file (smaller ones stay inline).
MIN_MAPPED_BYTES = 1024


@cache
def platform_tag() -> str:
    """onnxruntime's version and a digest of the CPU's model and flags (the prepacked layout)."""
    import onnxruntime as ort

    cpu = ""
    try:
        for line in Path("/proc/cpuinfo").read_text(errors="replace").splitlines():
            if line.startswith(("flags", "model name", "Features", "CPU part")):
                cpu += line
                if line.startswith(("flags", "Features")):
                    break
    except OSError:
        pass
    digest = hashlib.sha256(f"{platform.machine()}|{cpu}".encode()).hexdigest()[:12]
    return f"ort{ort.__version__}-{digest}"


class NothingToMap(Exception):
    """The model has no initializer large enough to map (it is served from its file)."""


def mapped_folder(source: Path) -> Path:
    """The folder beside ``source`` that holds its mapped form on this platform."""
    return source.parent / f".mapped-{platform_tag()}"


def mapped_copy(source: Path) -> Path | None:
    """The path of ``source``'s mapped model, written now if this node has none; None when
    it cannot be written (onnxruntime cannot save this model, a read-only cache): the
    caller then opens the source as before."""
    folder = mapped_folder(source)
    model = folder / MODEL
    if model.is_file():
        return model
    lock_path = source.parent / ".mapped.lock"
    try:
        with lock_path.open("a") as lock:
            # One writer per node: the other workers wait here and then map its file.
            fcntl.flock(lock, fcntl.LOCK_EX)
            if not model.is_file():
                _write(source, folder)
    except NothingToMap:
        return None
    except Exception as exc:
        log.warning("serving %s from its own heap: no mapped copy (%s)", source.name, exc)
        return None
    return model


def _write(source: Path, folder: Path) -> None:
    import onnxruntime as ort

    tmp = folder.with_name(f"{folder.name}.{os.getpid()}.{uuid.uuid4().hex}.part")
    tmp.mkdir()
    try:
        options = ort.SessionOptions()
        options.log_severity_level = 3
        # Extended, not all: the layout (NCHWc) rewrites are made at each load instead.
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
        options.optimized_model_filepath = str(tmp / MODEL)
        for key, value in (
            ("session.optimized_model_external_initializers_file_name", DATA),
            ("session.optimized_model_external_initializers_min_size_in_bytes",
             str(MIN_MAPPED_BYTES)),
            ("session.save_external_prepacked_constant_initializers", "1"),
        ):  # fmt: skip
            options.add_session_config_entry(key, value)
        session = ort.InferenceSession(
            str(source), sess_options=options, providers=["CPUExecutionProvider"]
        )
        del session
        if not (tmp / DATA).is_file():
            # Nothing large enough to map: the copy would load onto the heap like the source.
            raise NothingToMap(source.name)
        for name in (MODEL, DATA):
            _flush(tmp / name)
        os.rename(tmp, folder)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _flush(path: Path) -> None:
    """Write the file to disk and drop it from the page cache: only the pages a session
    touches (the prepacked weights, not the originals beside them) come back, as
    mapped pages that count against the processes that use them."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
        if hasattr(os, "posix_fadvise"):  # not on macOS
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)
