"""The artifact store on a local folder and on fsspec's in-memory filesystem (as S3 would be)."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from aimass.artifacts.names import validate_filename, validate_name
from aimass.artifacts.store import ArtifactStore
from aimass.errors import ChecksumMismatch, InvalidInput


@pytest.fixture(params=["local", "memory"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> ArtifactStore:
    if request.param == "local":
        return ArtifactStore(str(tmp_path / "artifacts"))
    return ArtifactStore(f"memory://aimass-test-{uuid.uuid4().hex}")


def _chunks(total: int, size: int = 1 << 20) -> Iterator[bytes]:
    sent = 0
    while sent < total:
        n = min(size, total - sent)
        yield bytes([sent % 251]) * n
        sent += n


def test_put_streams_and_records_checksum_and_size(store: ArtifactStore) -> None:
    expected = hashlib.sha256(b"".join(_chunks(5_000_000))).hexdigest()
    stored = store.put("models/1/abc", _chunks(5_000_000))
    assert stored.size == 5_000_000
    assert stored.sha256 == expected
    assert hashlib.sha256(b"".join(store.open("models/1/abc", expected))).hexdigest() == expected


def test_failed_write_leaves_nothing_under_the_key(store: ArtifactStore) -> None:
    def broken() -> Iterator[bytes]:
        yield b"partial"
        raise OSError("client went away")

    with pytest.raises(OSError):
        store.put("models/1/half", broken())
    assert not store.exists("models/1/half")
    assert not store.exists("tmp") or store.fs.ls(store._path("tmp")) == []


def test_reading_corrupted_bytes_raises_before_the_last_chunk(store: ArtifactStore) -> None:
    stored = store.put("k/1", _chunks(3 << 20))
    with store.fs.open(store._path("k/1"), "r+b" if store.fs.protocol == "file" else "wb") as f:
        f.write(b"corrupt" if store.fs.protocol == "file" else b"x" * (3 << 20))
    received = []
    with pytest.raises(ChecksumMismatch):
        for chunk in store.open("k/1", stored.sha256):
            received.append(chunk)
    assert sum(len(c) for c in received) < 3 << 20


@pytest.mark.parametrize("key", ["../x", "/abs", "a//b", "a/./b", "a/../b", ""])
def test_keys_never_escape_the_root(store: ArtifactStore, key: str) -> None:
    with pytest.raises(InvalidInput):
        store.put(key, iter([b"x"]))


@pytest.mark.parametrize(
    "name",
    ["../a", "a/b", "..", "/etc/passwd", "a\\b", "\uff21\uff22", "a\x00b", " lead", ".hidden"],
)
def test_file_names_are_allow_listed(name: str) -> None:
    with pytest.raises(InvalidInput):
        validate_filename(name)


def test_ordinary_names_pass() -> None:
    assert validate_filename("model v2.onnx") == "model v2.onnx"
    assert validate_name("iris-classifier_2.1") == "iris-classifier_2.1"


def test_list_keys_names_what_is_stored(store: ArtifactStore) -> None:
    store.put("models/1/a", iter([b"x"]))
    store.put("models/2/b", iter([b"y"]))
    store.put("datasets/1/c", iter([b"z"]))
    listed = store.list_keys("models")
    assert sorted(listed) == ["models/1/a", "models/2/b"]
    assert all(t > 0 for t in listed.values())
    assert store.list_keys("nothing-here") == {}
