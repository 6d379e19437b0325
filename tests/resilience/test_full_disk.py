"""A full artifact store: 507 naming the store, nothing half-written, a checkpoint that hits it
requeues the attempt without using its retry budget, and the earlier checkpoint still resumes.

The store is an 8 MiB tmpfs the test mounts (CI runs as root); skipped where
mounting is not permitted (not root, or a container without the capability).
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from aimass.config import Settings
from conftest import free_port, start_server
from resilience.resa_jobs import submit_script, wait_job

SIZE = 8 * 1024 * 1024


@pytest.fixture(scope="module")
def small_store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """An 8 MiB tmpfs, unmounted afterwards."""
    mount = tmp_path_factory.mktemp("small-store")
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={SIZE}", "tmpfs", str(mount)],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:  # not root, or a container without CAP_SYS_ADMIN
        pytest.skip(f"mounting a tmpfs is not permitted here: {done.stderr.strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], capture_output=True)


@pytest.fixture(scope="module")
def api(small_store: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[httpx.Client]:
    """A server (jobs on, SQLite on the ordinary disk) whose artifact store is the tmpfs."""
    tmp = tmp_path_factory.mktemp("full-disk")
    settings = Settings(
        home=tmp / "home",
        database_url=f"sqlite:///{tmp / 'meta.db'}",  # the start migrates it
        artifacts=str(small_store / "artifacts"),
        port=free_port(),
        tune_gc=False,
        jobs=True,
        job_slots=2.0,
    )
    for live in start_server(settings):
        with httpx.Client(
            base_url=live.url,
            headers={"Authorization": f"Bearer {live.admin_token}"},
            timeout=60,
        ) as client:
            yield client


def _big_onnx(path: Path, floats: int) -> Path:
    """A valid ONNX model of about ``4 * floats`` bytes (one large constant)."""
    import numpy as np
    from onnx import TensorProto, helper, numpy_helper

    constant = numpy_helper.from_array(np.zeros(floats, dtype=np.float32), "C")
    graph = helper.make_graph(
        [helper.make_node("Add", ["X", "C"], ["Y"])],
        "big",
        [helper.make_tensor_value_info("X", TensorProto.FLOAT, [1, floats])],
        [helper.make_tensor_value_info("Y", TensorProto.FLOAT, [1, floats])],
        [constant],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    path.write_bytes(model.SerializeToString())
    return path


def _leftovers(store: Path) -> list[Path]:
    return [p for p in (store / "artifacts" / "tmp").rglob("*") if p.is_file()]


@pytest.mark.timeout(300)  # two attempts of a job, the first waiting for the zygote
def test_a_full_store_is_507_and_a_checkpoint_on_it_is_an_infrastructure_failure(
    api: httpx.Client, small_store: Path, tmp_path: Path
) -> None:
    model = _big_onnx(tmp_path / "big.onnx", SIZE // 4 + 1024)
    with model.open("rb") as src:
        refused = api.post("/api/v1/models/big/versions", files={"file": ("big.onnx", src)})
    assert refused.status_code == 507, refused.text
    assert refused.json()["error"]["code"] == "insufficient_storage"
    assert "artifact store (AIMASS_ARTIFACTS) is out of space" in refused.text
    assert not _leftovers(small_store)  # nothing half-written
    listed = api.get("/api/v1/models/big/versions")
    assert listed.status_code == 404 or listed.json() == [], listed.text

    job = submit_script(api, "disk_filler.py", {"bytes": SIZE + 1024 * 1024})
    done = wait_job(api, job["id"], timeout=180)
    assert done["state"] == "succeeded", done
    # Attempt 1 hit the full store; attempt 2 resumed from the checkpoint before it.
    assert done["outputs"]["resumed"] == "step-1"
    assert (done["attempt"], done["retries_used"], done["infra_requeues"]) == (2, 0, 1)
    steps = [c["step"] for c in api.get(f"/api/v1/jobs/{job['id']}/checkpoints").json()]
    assert steps == [1]
    events = api.get(f"/api/v1/jobs/{job['id']}/events").json()
    assert any("out of space" in (e["reason"] or "") for e in events), events
    assert not _leftovers(small_store)
