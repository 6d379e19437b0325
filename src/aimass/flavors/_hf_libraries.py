"""torch and transformers, imported once per process, and warmed before a deployment needs them.

Importing ``transformers.modeling_utils`` (which brings torch, ``torch._dynamo``,
``torch.distributed`` and sympy with it) is most of the cold start of a
transformers model: seconds, against a tenth of a second to read MiniLM's 90 MB
of safetensors. A server that holds transformers models (or has just been sent
one) imports them on a background thread (:func:`warm_in_background`), so a
deployment created later starts in well under a second. Every import goes
through :func:`import_libraries`, under one lock: a load that arrives while the
warm-up runs waits for it instead of importing the same modules from a second
thread.

Nothing is fetched from a hub: every ``from_pretrained`` here passes
``local_files_only=True`` and a folder, so no offline switch is written to the
process environment.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

log = logging.getLogger(__name__)

_lock = threading.Lock()
#: ``from_pretrained`` is not thread-safe (transformers#41782): two deployments
#: loading at once in one process can leave a tied weight on the meta device.
_load_lock = threading.Lock()
_imported: dict[str, Any] = {}
_warming: list[threading.Thread] = []


def import_libraries() -> tuple[Any, Any]:
    """``torch`` and ``transformers`` with its model machinery imported (once per process)."""
    with _lock:
        if not _imported:
            started = time.perf_counter()
            import torch
            import transformers
            import transformers.modeling_utils  # the costly part, done here
            from transformers.models.auto import modeling_auto  # noqa: F401

            _imported.update(torch=torch, transformers=transformers)
            log.info("imported torch and transformers in %.2f s", time.perf_counter() - started)
        return _imported["torch"], _imported["transformers"]


def load_pretrained(model_class: Any, folder: Any, **options: Any) -> Any:
    """``model_class.from_pretrained(folder, **options)``, one load at a time per process."""
    with _load_lock:
        return model_class.from_pretrained(folder, **options)


def imported() -> bool:
    """Whether this process has imported the libraries already."""
    return bool(_imported)


def warm_in_background(reason: str) -> threading.Thread | None:
    """Import the libraries on a daemon thread, once; the thread, or None if nothing to do."""
    with _lock:
        if _imported or _warming:
            return None
        thread = threading.Thread(
            target=_warm, args=(reason,), name="aimass-transformers-warm", daemon=True
        )
        _warming.append(thread)
    thread.start()
    return thread


def _warm(reason: str) -> None:
    started = time.perf_counter()
    try:
        import_libraries()
    except Exception as exc:  # a broken install shows when a model loads, with its reason
        log.warning("warming the transformers libraries failed: %s", exc)
        return
    log.info("transformers libraries warm (%s) after %.2f s", reason, time.perf_counter() - started)
