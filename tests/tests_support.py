"""Helpers shared by API tests (imported as ``tests_support``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx


def upload(
    http: httpx.Client,
    name: str,
    path: Path,
    meta: dict[str, Any] | None = None,
    filename: str | None = None,
    expect: int = 201,
) -> dict[str, Any]:
    """Upload a model file as a new version and check the status code."""
    with path.open("rb") as src:
        response = http.post(
            f"/api/v1/models/{name}/versions",
            files={"file": (filename or path.name, src)},
            data={"meta": json.dumps(meta or {})},
        )
    assert response.status_code == expect, response.text
    body: dict[str, Any] = response.json()
    return body


def deploy(http: httpx.Client, body: dict[str, Any], timeout: float = 30.0) -> dict[str, Any]:
    """Create a deployment and wait until every replica reports ready."""
    response = http.post("/api/v1/deployments", json=body)
    assert response.status_code == 201, response.text
    name = response.json()["name"]
    return wait_state(http, name, "ready", timeout)


def wait_state(http: httpx.Client, name: str, state: str, timeout: float = 30.0) -> dict[str, Any]:
    """Poll a deployment until it reaches ``state``."""
    import time

    deadline = time.monotonic() + timeout
    while True:
        found: dict[str, Any] = http.get(f"/api/v1/deployments/{name}").json()
        if found["state"] == state:
            return found
        assert time.monotonic() < deadline, f"deployment {name} stuck in {found}"
        time.sleep(0.05)


def oip_json(rows: Any, name: str = "X", datatype: str = "FP32") -> dict[str, Any]:
    """An Open Inference Protocol JSON request for a 2-D batch."""
    import numpy as np

    array = np.asarray(rows)
    return {
        "inputs": [
            {
                "name": name,
                "shape": list(array.shape),
                "datatype": datatype,
                "data": array.ravel().tolist(),
            }
        ]
    }


def tiny_torchscript(path: Path) -> Path:
    """Write a TorchScript ``Linear(3, 2)`` with its aimass signature (input ``input`` FP32
    [-1, 3], output ``logits`` FP32 [-1, 2]) to ``path``; skips the test without torch."""
    import warnings

    import pytest

    torch = pytest.importorskip("torch")
    signature = {
        "inputs": [{"name": "input", "datatype": "FP32", "shape": [-1, 3]}],
        "outputs": [{"name": "logits", "datatype": "FP32", "shape": [-1, 2]}],
    }
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # newer torch deprecates TorchScript
        module = torch.jit.script(torch.nn.Sequential(torch.nn.Linear(3, 2)).eval())
        torch.jit.save(
            module, str(path), _extra_files={"aimass_signature.json": json.dumps(signature)}
        )
    return path
