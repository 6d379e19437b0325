"""A model file uploaded without trust can never read or write a file, in any process.

Hostile files are built at test time (``_hostile_models.py``): TorchScript that
reads the server's token file in ``forward``, a scripted ``__setstate__`` that
creates a canary while the archive loads, ONNX whose external data points at
``/etc/passwd`` or ``../../token``, a custom-domain ONNX operator, and a
trusted pickle that records the pid of whoever unpickles it. Each test also
shows that the same file does what it tries when loaded here, in the test
process, so it fails if the server ever loaded it the same way.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import psutil
import pytest

from conftest import LiveServer, ModelFiles
from security import _hostile_models as hostile
from tests_support import deploy, oip_json, upload

pytestmark = pytest.mark.torch
HOST_MODULE = "aimass.flavors._host"


@pytest.fixture
def torch() -> Any:
    return pytest.importorskip("torch")


@pytest.fixture
def editor(live_server: LiveServer, http: httpx.Client) -> Iterator[httpx.Client]:
    """A client holding an editor's token: may upload, may not mark an upload trusted."""
    made = http.post("/api/v1/tokens", json={"name": "ed", "role": "editor"})
    assert made.status_code == 201, made.text
    with httpx.Client(
        base_url=live_server.url,
        headers={"Authorization": f"Bearer {made.json()['secret']}"},
        timeout=60,
    ) as client:
        yield client


def _save(module: Any, path: Path) -> Path:
    module.save(str(path))
    return path


def _hosts(serving_from: Path) -> list[psutil.Process]:
    """The model host processes running now (inside their sandboxes) on files under a folder.

    A deployment's host runs the server's local copy of the version (its model
    cache); naming that folder leaves out upload checks and other servers' hosts.
    """
    found = []
    for process in psutil.process_iter(["cmdline"]):
        cmdline = process.info["cmdline"] or []
        if (
            HOST_MODULE in cmdline
            and "bwrap" not in Path(cmdline[0]).name
            and any(arg.startswith(str(serving_from)) for arg in cmdline)
        ):
            found.append(process)
    return found


def test_torchscript_reading_the_token_file_is_refused_for_an_editor(
    live_server: LiveServer, editor: httpx.Client, tmp_path: Path, torch: Any
) -> None:
    token = live_server.settings.token_file
    module = hostile.reads_file_module(token, len(token.read_bytes()))
    path = _save(module, tmp_path / "reads.pt")

    body = upload(editor, "reads", path, expect=422)

    assert "aten::from_file" in body["error"]["message"]
    assert "forward" in body["error"]["message"]
    # The same file does read the token when run here: the allow-list is what stopped it.
    loaded = hostile.jit_load(path)
    read = bytes(loaded(torch.zeros(1, 4))[0].to(torch.uint8).tolist())
    assert read == token.read_bytes()


def test_trusted_torchscript_cannot_read_the_token_when_served(
    live_server: LiveServer, http: httpx.Client, tmp_path: Path, torch: Any
) -> None:
    token = live_server.settings.token_file
    secret = token.read_bytes()
    path = _save(hostile.reads_file_module(token, len(secret)), tmp_path / "reads.pt")
    upload(http, "reads", path, meta={"trusted": True})  # an admin's trust skips the allow-list
    deploy(http, {"name": "reads", "model": "reads", "version": 1}, timeout=120)

    response = http.post("/v2/models/reads/infer", json=oip_json(hostile.rows(1), name="x"))

    # The host cannot see the server's home: the call fails cleanly, and nothing of the token
    # comes back, as bytes or as the numbers the module would have returned.
    assert response.status_code in (400, 503), response.text
    assert secret.decode() not in response.text
    numbers = ",".join(str(float(b)) for b in secret[:8])
    assert numbers not in response.text.replace(" ", "")


def test_setstate_writing_a_canary_is_refused_and_never_runs_outside_the_sandbox(
    live_server: LiveServer, editor: httpx.Client, http: httpx.Client, tmp_path: Path, torch: Any
) -> None:
    canary = tmp_path / "canary"
    path = _save(hostile.writes_on_load_module(canary), tmp_path / "writes.pt")
    assert not canary.exists()

    refused = upload(editor, "writes", path, expect=422)
    trusted = upload(http, "writes", path, meta={"trusted": True})  # loads, sandboxed

    message = refused["error"]["message"]
    assert "aten::from_file" in message and "__setstate__" in message
    assert trusted["version"] == 1
    assert not canary.exists()
    hostile.jit_load(path)  # here, in the test process, loading does create it
    assert canary.exists()


@pytest.mark.parametrize("location", ["/etc/passwd", "../../token", "weights.bin"])
def test_onnx_external_data_outside_the_upload_is_refused(
    editor: httpx.Client, tmp_path: Path, location: str
) -> None:
    path = tmp_path / "external.onnx"
    path.write_bytes(hostile.onnx_with_external_data(location))

    body = upload(editor, "external", path, expect=422)

    message = body["error"]["message"]
    assert "'w'" in message and location in message and "external data" in message


def test_onnx_custom_operator_domain_is_refused(editor: httpx.Client, tmp_path: Path) -> None:
    path = tmp_path / "custom.onnx"
    path.write_bytes(hostile.onnx_with_custom_domain("com.evil.files"))

    body = upload(editor, "custom", path, expect=422)

    assert "com.evil.files" in body["error"]["message"]


def test_trusted_pickle_is_never_unpickled_in_the_api_process(
    http: httpx.Client, tmp_path: Path
) -> None:
    canary = tmp_path / "pid"
    path = tmp_path / "model.pkl"
    path.write_bytes(hostile.writes_pid_pickle(canary))

    response = http.post(
        "/api/v1/models/pid/versions",
        files={"file": ("model.pkl", path.read_bytes())},
        data={"meta": json.dumps({"trusted": True})},
    )

    # It ran in the sandbox (it unpickles to None: "no predict method"), never here.
    assert response.status_code == 422, response.text
    assert "no predict method" in response.text
    assert not canary.exists()
    import pickle

    pickle.loads(path.read_bytes())
    assert canary.read_text() != ""


def test_trusted_sklearn_pickle_serves_through_the_sandboxed_host(
    http: httpx.Client, model_files: ModelFiles
) -> None:
    import pickle

    upload(http, "cancer", model_files.pickle, meta={"trusted": True})
    deploy(http, {"name": "cancer", "model": "cancer", "version": 1}, timeout=120)
    x = np.asarray(model_files.x)[:5]

    response = http.post("/v2/models/cancer/infer", json=oip_json(x, name="input", datatype="FP64"))

    assert response.status_code == 200, response.text
    outputs = {o["name"]: o["data"] for o in response.json()["outputs"]}
    expected = pickle.loads(model_files.pickle.read_bytes()).predict(x)
    assert outputs["predict"] == expected.tolist()


def test_sandboxed_host_lives_exactly_as_long_as_its_deployment(
    live_server: LiveServer, editor: httpx.Client, http: httpx.Client, tmp_path: Path, torch: Any
) -> None:
    module = hostile.plain_module()
    path = _save(module, tmp_path / "mlp.pt")
    cache = live_server.settings.model_cache_dir
    before = {p.pid for p in _hosts(cache)}
    upload(editor, "mlp", path)  # pure operators: an editor may upload it
    deploy(http, {"name": "mlp", "model": "mlp", "version": 1}, timeout=120)

    response = http.post("/v2/models/mlp/infer", json=oip_json(hostile.rows(3), name="x"))
    running = [p for p in _hosts(cache) if p.pid not in before]

    assert response.status_code == 200, response.text
    got = np.asarray(response.json()["outputs"][0]["data"]).reshape(3, 3)
    expected = module(torch.from_numpy(hostile.rows(3))).detach().numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-5)
    assert len(running) == 1
    assert http.delete("/api/v1/deployments/mlp").status_code == 204
    deadline = time.monotonic() + 30
    while running[0].is_running() and running[0].status() != psutil.STATUS_ZOMBIE:
        assert time.monotonic() < deadline, "the host outlived its deployment"
        time.sleep(0.1)
