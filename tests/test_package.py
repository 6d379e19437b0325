"""The public surface of ``import aimass``: small, sorted, and cheap to import."""

from __future__ import annotations

import json
import subprocess
import sys

import aimass


def test_public_surface_is_small_and_sorted() -> None:
    assert aimass.__all__ == sorted(aimass.__all__)
    assert set(aimass.__all__) == {"Client", "__version__"}
    assert aimass.Client.__name__ == "Client"


def test_import_loads_no_ml_library_reads_no_config_and_starts_no_thread() -> None:
    code = (
        "import sys, threading, json\n"
        "import aimass\n"
        "heavy = [m for m in ('numpy', 'sklearn', 'torch', 'onnxruntime', 'httpx', 'sqlalchemy',"
        " 'fastapi', 'pydantic_settings') if m in sys.modules]\n"
        "print(json.dumps({'heavy': heavy, 'threads': threading.active_count()}))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    found = json.loads(out.stdout)
    assert found == {"heavy": [], "threads": 1}
