"""Two servers on one PostgreSQL and one artifact folder: a restart never breaks the other."""

from __future__ import annotations

import asyncio
import os
import shutil
import threading
import time
from pathlib import Path

import httpx
import pytest
from tests.conftest import ModelFiles, free_port, start_server

from aimass.artifacts.store import ArtifactStore
from aimass.config import Settings
from aimass.store.db import Database
from aimass.store.references import OrphanSweeper

pytestmark = pytest.mark.slow

HOUR = 3600


def _backdate(path: Path, seconds: float) -> None:
    old = time.time() - seconds
    os.utime(path, (old, old))


@pytest.mark.backend("postgresql")
def test_restarting_one_server_keeps_the_others_uploads(
    settings: Settings, tmp_path: Path, model_files: ModelFiles
) -> None:
    first = settings.model_copy(update={"home": tmp_path / "first"})
    second = settings.model_copy(update={"home": tmp_path / "second", "port": free_port()})
    a = start_server(first)
    a_live = next(a)
    second.home.mkdir(parents=True)  # one installation: B serves A's admin token too
    shutil.copy(first.token_file, second.token_file)
    b = start_server(second)
    next(b)
    tmp = Path(settings.resolved_artifacts) / "tmp"
    answers: list[int] = []
    done = threading.Event()

    def upload_on_a() -> None:
        with httpx.Client(
            base_url=a_live.url,
            headers={"Authorization": f"Bearer {a_live.admin_token}"},
            timeout=60,
        ) as http:
            while not done.is_set():
                with model_files.onnx.open("rb") as src:
                    response = http.post(
                        "/api/v1/models/shared/versions", files={"file": ("m.onnx", src)}
                    )
                answers.append(response.status_code)
                done.wait(0.05)

    uploader = threading.Thread(target=upload_on_a)
    uploader.start()
    try:
        # What an upload in flight on A looks like to B's start, and what one that a
        # crash abandoned an hour ago looks like.
        tmp.mkdir(parents=True, exist_ok=True)
        in_flight = tmp / "in-flight-on-a"
        in_flight.write_bytes(b"partial")
        abandoned = tmp / "abandoned"
        abandoned.write_bytes(b"partial")
        _backdate(abandoned, 2 * HOUR)
        b.close()  # B stops and starts again (its start sweeps the shared store)
        b = start_server(second)
        next(b)
        assert in_flight.exists(), "a restart deleted another server's write in flight"
        assert not abandoned.exists(), "an abandoned write outlived the restart"
        in_flight.unlink()
        done.wait(0.5)  # a few more uploads on A after B is back
    finally:
        done.set()
        uploader.join(timeout=60)
        b.close()
        a.close()
    assert len(answers) >= 2 and set(answers) == {201}, answers


def test_the_leaders_sweep_removes_only_abandoned_bytes(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'meta.db'}"
    db = Database(url)
    db.upgrade()
    store = ArtifactStore(str(tmp_path / "artifacts"))
    # A crash between moving an artifact into place and inserting its row: complete bytes
    # that no version refers to. Another server's fresh upload has not inserted its row yet.
    orphan = store.put("models/gone/1/m.onnx", [b"complete"]).key
    fresh = store.put("models/new/1/m.onnx", [b"complete"]).key
    stalled = store.put("tmp/stalled", [b"part"]).key
    root = tmp_path / "artifacts"
    _backdate(root / orphan, 2 * HOUR)
    _backdate(root / stalled, 2 * HOUR)
    sweeper = OrphanSweeper(db, store, interval=0.05, min_age_s=HOUR)

    async def two_ticks() -> None:
        sweeper.start()
        await asyncio.sleep(0.3)
        await sweeper.stop()

    asyncio.run(two_ticks())
    db.close()
    assert not store.exists(orphan) and not store.exists(stalled)
    assert store.exists(fresh)
