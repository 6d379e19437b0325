"""The sandboxed model host: its wire format never builds objects from bytes, caps what it
reads, and the host process is restarted after it dies and stopped when closed."""

from __future__ import annotations

import io
import json
import os
import pickle
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from aimass.errors import Unavailable
from aimass.flavors import _wire
from aimass.flavors.pickle import PickleFlavor
from aimass.flavors.sandboxed import SandboxedPredictor

Data = tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]


def _decode(data: bytes, limit: int = 2**20) -> tuple[dict[str, Any], dict[str, Any]]:
    return _wire.decode(io.BytesIO(data).read, limit)


def test_wire_round_trips_numbers_strings_and_bytes_without_pickle() -> None:
    arrays = {
        "x": np.arange(6, dtype=np.float32).reshape(2, 3),
        "s": np.array(["a", "b"], dtype=object),
        "b": np.array([b"\x00\xff"], dtype=object),
    }

    message = _wire.encode({"op": "predict"}, arrays)
    header, decoded = _decode(message)

    assert b"pickle" not in message and header == {"op": "predict"}
    np.testing.assert_array_equal(decoded["x"], arrays["x"])
    assert decoded["s"].tolist() == ["a", "b"] and decoded["b"].tolist() == [b"\x00\xff"]


def test_wire_refuses_object_dtype_from_raw_bytes() -> None:
    body = json.dumps({"arrays": [{"name": "x", "dtype": "object", "shape": [1]}]}).encode()
    message = len(body).to_bytes(8, "little") + body + b"\x00" * 8

    with pytest.raises(_wire.WireError, match="dtype that is not allowed"):
        _decode(message)


def test_wire_refuses_a_reply_over_the_cap_before_reading_it() -> None:
    big = {"arrays": [{"name": "x", "dtype": "float64", "shape": [2**40]}]}
    body = json.dumps(big).encode()

    with pytest.raises(_wire.WireError, match="cap"):
        _decode(len(body).to_bytes(8, "little") + body)
    with pytest.raises(_wire.WireError, match="cap"):
        _decode((2**40).to_bytes(8, "little"))


def _trusted_pickle(tmp_path: Path, logreg: Any) -> SandboxedPredictor:
    path = tmp_path / "model.pkl"
    path.write_bytes(pickle.dumps(logreg))
    predictor = PickleFlavor().load(path, trusted=True)
    assert isinstance(predictor, SandboxedPredictor)
    return predictor


def test_a_killed_host_is_started_again_by_the_next_call(
    tmp_path: Path, logreg: Any, cancer: Data
) -> None:
    features, _ = cancer
    predictor = _trusted_pickle(tmp_path, logreg)
    try:
        first = predictor.host.pid
        assert first is not None
        os.kill(first, 9)
        deadline = time.monotonic() + 10
        while predictor.host.pid is not None:
            assert time.monotonic() < deadline
            time.sleep(0.05)

        again = predictor.predict(features[:3])

        np.testing.assert_array_equal(again, logreg.predict(features[:3]))
        assert predictor.host.pid not in (None, first)
    finally:
        predictor.close()
    assert predictor.host.pid is None


def test_without_bubblewrap_code_bearing_files_are_unavailable_not_loaded_here(
    tmp_path: Path, logreg: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "model.pkl"
    path.write_bytes(pickle.dumps(logreg))
    monkeypatch.setenv("PATH", str(tmp_path))  # no bwrap on the PATH

    with pytest.raises(Unavailable, match="apt-get install -y bubblewrap"):
        PickleFlavor().inspect(path, trusted=True)


def test_a_call_that_hangs_answers_unavailable_and_kills_the_whole_host(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import psutil

    from aimass.flavors import sandboxed
    from flavors._sleepy_model import Sleepy

    path = tmp_path / "sleepy.pkl"
    path.write_bytes(pickle.dumps(Sleepy()))
    predictor = PickleFlavor().load(path, trusted=True)
    assert isinstance(predictor, SandboxedPredictor) and predictor.host.pid is not None
    tree = psutil.Process(predictor.host.pid)
    processes = [tree, *tree.children(recursive=True)]
    monkeypatch.setattr(sandboxed, "CALL_TIMEOUT_S", 1.0)

    with pytest.raises(Unavailable, match="did not finish"):
        predictor.predict(np.zeros((1, 2)))

    def alive() -> list[psutil.Process]:
        try:
            return [p for p in processes if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
        except psutil.NoSuchProcess:
            return alive()

    deadline = time.monotonic() + 10  # SIGKILL is sent at once; the kernel ends them soon after
    while alive():
        assert time.monotonic() < deadline, f"still running: {alive()}"
        time.sleep(0.05)
