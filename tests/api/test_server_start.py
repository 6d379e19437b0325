"""What keeps ``aimass server`` starting fast: no heavy library is imported before it listens.

The start's time is printed by ``benchmarks/plugins/start_time.py``, not asserted;
this guards its cause. A fresh interpreter does what ``run_server`` does before
uvicorn listens (prepare an up-to-date database, build the platform with every
built-in plugin, create the app, run its lifespan start) and lists its modules.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from aimass.config import Settings, settings_env

# A fresh interpreter per run: one backend is enough (tests/conftest.py).
pytestmark = pytest.mark.backend("postgresql")

#: Libraries imported where a model of theirs is loaded or a feature is used, never at start.
HEAVY = (
    "torch",
    "transformers",
    "tokenizers",
    "safetensors",
    "huggingface_hub",
    "grpc",
    "ray",
    "onnxruntime",
    "onnx",
    "sklearn",
    "skops",
    "scipy",
    "pandas",
    "pyarrow",
    "xgboost",
    "lightgbm",
    "mlflow",
    "httpx",
    "alembic",  # an up-to-date database is a version read, not a migration run
)

START = """
import asyncio, json, sys
from aimass.api.server import create_app, prepare
from aimass.config import Settings
from aimass.platform import Platform

settings = Settings()
prepare(settings)
app = create_app(Platform.from_settings(settings))


async def start_and_stop() -> None:
    async with app.control.router.lifespan_context(app.control):
        pass


asyncio.run(start_and_stop())
print(json.dumps(sorted(sys.modules)))
"""


def test_a_server_start_imports_no_heavy_library(tmp_path: Path, db_url: str) -> None:
    settings = Settings(home=tmp_path / "home", database_url=db_url, jobs=False, tune_gc=False)
    result = subprocess.run(
        [sys.executable, "-c", START],
        env={**os.environ, **settings_env(settings)},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr

    loaded = {name.split(".")[0] for name in json.loads(result.stdout.splitlines()[-1])}
    assert "fastapi" in loaded and "aimass" in loaded  # it did start
    assert sorted(loaded.intersection(HEAVY)) == []
