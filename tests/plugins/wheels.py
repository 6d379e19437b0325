"""Build tiny real wheels of aimass plugins and pip-install them into a folder.

A plugin here is a real distribution: a module, a ``dist-info`` with its
``entry_points.txt`` in the ``aimass.plugins`` group, installed by pip with
``--target``; a server started with that folder on ``PYTHONPATH`` finds it
through ``importlib.metadata`` like any installed package.
"""

from __future__ import annotations

import base64
import hashlib
import subprocess
import sys
import textwrap
import zipfile
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class PluginDist:
    """One distribution: its name, version, modules (name -> source) and entry points."""

    name: str
    modules: dict[str, str]
    #: entry point name -> ``module:function``
    entry_points: dict[str, str]
    version: str = "0.1.0"
    extra_files: dict[str, str] = field(default_factory=dict)


def _record_line(path: str, data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"{path},sha256={digest},{len(data)}"


def build_wheel(dist: PluginDist, folder: Path) -> Path:
    """Write ``dist`` as a pure-Python wheel in ``folder``; returns its path."""
    norm = dist.name.replace("-", "_")
    info = f"{norm}-{dist.version}.dist-info"
    files: dict[str, bytes] = {
        f"{module}.py": textwrap.dedent(source).encode() for module, source in dist.modules.items()
    }
    files.update({k: v.encode() for k, v in dist.extra_files.items()})
    files[f"{info}/METADATA"] = (
        f"Metadata-Version: 2.1\nName: {dist.name}\nVersion: {dist.version}\n"
    ).encode()
    files[f"{info}/WHEEL"] = (
        b"Wheel-Version: 1.0\nGenerator: aimass-tests\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
    )
    entry_points = "".join(f"{k} = {v}\n" for k, v in dist.entry_points.items())
    files[f"{info}/entry_points.txt"] = f"[aimass.plugins]\n{entry_points}".encode()
    record = [_record_line(path, data) for path, data in files.items()]
    files[f"{info}/RECORD"] = ("\n".join([*record, f"{info}/RECORD,,"]) + "\n").encode()
    wheel = folder / f"{norm}-{dist.version}-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        for path, data in files.items():
            archive.writestr(path, data)
    return wheel


def pip_install(requirements: list[Path], target: Path) -> None:
    """``pip install --no-deps --target`` each wheel or project folder (no network)."""
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-deps",
            "--no-index",
            "--no-build-isolation",
            "--disable-pip-version-check",
            "--target",
            str(target),
            *map(str, requirements),
        ],
        check=True,
    )


def install_plugins(dists: list[PluginDist], folder: Path) -> Path:
    """Build and pip-install ``dists`` under ``folder``; returns the ``--target`` folder."""
    wheels = folder / "wheels"
    wheels.mkdir(parents=True, exist_ok=True)
    target = folder / "site"
    pip_install([build_wheel(d, wheels) for d in dists], target)
    return target
