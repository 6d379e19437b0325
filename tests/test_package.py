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


def test_one_version_everywhere() -> None:
    import tomllib
    from pathlib import Path

    from aimass._version import __version__

    pyproject = Path(__file__).resolve().parents[1] / "pyproject.toml"
    assert aimass.__version__ == __version__
    assert tomllib.loads(pyproject.read_text())["project"]["version"] == __version__


def test_domain_packages_reexport_the_entities() -> None:
    """``aimass.<package>.entities`` keeps working; the classes live in ``aimass.entities``."""
    from aimass.auth.entities import Token
    from aimass.datasets.entities import DatasetVersion
    from aimass.entities import auth, datasets, jobs, registry, signature
    from aimass.flavors.signature import Signature
    from aimass.jobs.entities import Job
    from aimass.registry.entities import ModelVersion

    assert Token is auth.Token
    assert DatasetVersion is datasets.DatasetVersion
    assert Signature is signature.Signature
    assert Job is jobs.Job
    assert ModelVersion is registry.ModelVersion


def test_checksum_mismatch_keeps_its_wire_code_and_old_name() -> None:
    from aimass import errors

    assert errors.ChecksumMismatch.code == "integrity_error"
    assert errors.ERRORS_BY_CODE["integrity_error"] is errors.ChecksumMismatch
    assert errors.IntegrityError is errors.ChecksumMismatch
