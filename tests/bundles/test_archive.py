"""Bundles: writing, round trips, and every way a hostile bundle is refused (zip-slip, bombs)."""

from __future__ import annotations

import hashlib
import io
import json
import stat
import struct
import zipfile
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol

import pytest

from aimass.bundles.archive import read_bundle, write_bundle
from aimass.bundles.manifest import BundleManifest
from aimass.errors import AimassError, ChecksumMismatch, TooLarge, Unprocessable
from aimass.flavors.signature import Signature, TensorSpec

ARTIFACT = b"onnx-bytes\x00\x01\x02" * 1000
LIMIT = 10 * 1024 * 1024
FILE = (stat.S_IFREG | 0o644) << 16


def make_manifest(data: bytes = ARTIFACT, /, **overrides: object) -> BundleManifest:
    fields: dict[str, object] = {
        "model": "iris",
        "version": 3,
        "flavor": "onnx",
        "filename": "model.onnx",
        "sha256": hashlib.sha256(data).hexdigest(),
        "size": len(data),
        "signature": Signature(inputs=[TensorSpec(name="x", datatype="FP32", shape=[-1, 4])]),
        "metrics": {"accuracy": 0.97},
        "tags": {"team": "ml"},
        "description": "v3",
        "model_description": "iris classifier",
        "model_tags": {"domain": "flowers"},
        "exported_at": datetime(2025, 5, 1, 12, 30, tzinfo=UTC),
        "aimass_version": "0.1.0",
    }
    fields.update(overrides)
    return BundleManifest.model_validate(fields)


def member(name: str, mode: int = FILE, compress: int = zipfile.ZIP_DEFLATED) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name, date_time=(2025, 1, 1, 0, 0, 0))
    info.external_attr = mode
    info.compress_type = compress
    return info


def manifest_bytes(manifest: BundleManifest) -> bytes:
    return manifest.model_dump_json().encode()


def raw_zip(path: Path, members: list[tuple[zipfile.ZipInfo, bytes]]) -> Path:
    """Any ZIP at all, including ones write_bundle would never make."""
    with zipfile.ZipFile(path, "w") as zf:
        for info, data in members:
            zf.writestr(info, data)
    return path


def standard_members(
    data: bytes = ARTIFACT, manifest: BundleManifest | None = None
) -> list[tuple[zipfile.ZipInfo, bytes]]:
    manifest = manifest or make_manifest(data)
    return [
        (member("manifest.json"), manifest_bytes(manifest)),
        (member(f"artifact/{manifest.filename}", compress=zipfile.ZIP_STORED), data),
    ]


def forge_sizes(path: Path, name: str, size: int) -> None:
    """Rewrite the uncompressed size a member declares, in both of its headers."""
    raw = bytearray(path.read_bytes())
    encoded = name.encode()
    with zipfile.ZipFile(path) as zf:
        offset = zf.getinfo(name).header_offset
    struct.pack_into("<I", raw, offset + 22, size)
    start = 0
    while (start := raw.find(b"PK\x01\x02", start)) >= 0:
        name_len = struct.unpack_from("<H", raw, start + 28)[0]
        if bytes(raw[start + 46 : start + 46 + name_len]) == encoded:
            struct.pack_into("<I", raw, start + 24, size)
        start += 4
    path.write_bytes(bytes(raw))


def tree(root: Path) -> set[Path]:
    return {p.relative_to(root) for p in root.rglob("*")}


@pytest.fixture
def dirs(tmp_path: Path) -> Iterator[tuple[Path, Path]]:
    """(where bundles are made, a fresh empty dest_dir); checks nothing leaked outside dest."""
    src = tmp_path / "src"
    dest = tmp_path / "out" / "a" / "dest"
    src.mkdir()
    dest.mkdir(parents=True)
    yield src, dest


class Refuse(Protocol):
    """Assert that ``read_bundle`` refuses a bundle cleanly."""

    def __call__(
        self,
        bundle: Path,
        error: type[AimassError] | tuple[type[AimassError], ...],
        match: str | None,
        limit: int = ...,
    ) -> None: ...


@pytest.fixture
def refuse(tmp_path: Path, dirs: tuple[Path, Path]) -> Refuse:
    """Assert a bundle is refused, names no host path, and leaves nothing on disk."""
    _, dest = dirs

    def check(
        bundle: Path,
        error: type[AimassError] | tuple[type[AimassError], ...],
        match: str | None,
        limit: int = LIMIT,
    ) -> None:
        before = tree(tmp_path)
        with pytest.raises(error, match=match) as info:
            read_bundle(bundle, dest, max_expanded_bytes=limit)
        assert str(tmp_path) not in info.value.message
        assert tree(tmp_path) == before
        assert list(dest.iterdir()) == []
        assert not (tmp_path / "evil").exists()
        assert not (tmp_path / "out" / "evil").exists()

    return check


# --- round trip ----------------------------------------------------------------------------


def chunks(data: bytes, size: int = 1000) -> Iterator[bytes]:
    for i in range(0, len(data), size):
        yield data[i : i + size]


def test_round_trip_keeps_bytes_and_checksum(dirs: tuple[Path, Path]) -> None:
    src, dest = dirs
    manifest = make_manifest()
    bundle = src / "iris-3.aimass.zip"
    with bundle.open("wb") as out:
        write_bundle(manifest, chunks(ARTIFACT), out)

    with zipfile.ZipFile(bundle) as zf:
        assert [i.filename for i in zf.infolist()] == ["manifest.json", "artifact/model.onnx"]
        assert zf.getinfo("manifest.json").compress_type == zipfile.ZIP_DEFLATED
        assert json.loads(zf.read("manifest.json"))["format"] == "aimass-bundle"

    got, path = read_bundle(bundle, dest, max_expanded_bytes=LIMIT)
    assert got == manifest
    assert path == dest / "model.onnx"
    assert path.read_bytes() == ARTIFACT
    assert hashlib.sha256(path.read_bytes()).hexdigest() == manifest.sha256
    assert list(dest.iterdir()) == [path]


class _Unseekable(io.RawIOBase):
    def __init__(self) -> None:
        self.data = bytearray()

    def writable(self) -> bool:
        return True

    def write(self, b: bytes) -> int:  # type: ignore[override]
        self.data += b
        return len(b)


def test_round_trip_through_unseekable_stream(dirs: tuple[Path, Path]) -> None:
    src, dest = dirs
    stream = _Unseekable()
    write_bundle(make_manifest(signature=None), chunks(ARTIFACT), stream)  # type: ignore[arg-type]
    bundle = src / "b.zip"
    bundle.write_bytes(bytes(stream.data))
    manifest, path = read_bundle(bundle, dest, max_expanded_bytes=LIMIT)
    assert manifest.signature is None
    assert path.read_bytes() == ARTIFACT


def test_empty_artifact_round_trips(dirs: tuple[Path, Path]) -> None:
    src, dest = dirs
    bundle = src / "b.zip"
    with bundle.open("wb") as out:
        write_bundle(make_manifest(b""), iter(()), out)
    _, path = read_bundle(bundle, dest, max_expanded_bytes=LIMIT)
    assert path.read_bytes() == b""


def test_write_bundle_refuses_artifact_that_differs_from_manifest() -> None:
    with pytest.raises(ChecksumMismatch):
        write_bundle(make_manifest(), chunks(ARTIFACT + b"x"), io.BytesIO())


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("sha256", "ABC"),
        ("sha256", "G" * 64),
        ("size", -1),
        ("filename", "../model.onnx"),
        ("filename", "dir/model.onnx"),
        ("model", "../iris"),
        ("format_version", 2),
        ("unknown_field", 1),
    ],
)
def test_manifest_validation(field: str, value: object) -> None:
    with pytest.raises(ValueError):
        make_manifest(**{field: value})


# --- refusals ------------------------------------------------------------------------------


def test_not_a_zip_is_refused(dirs: tuple[Path, Path], refuse: Refuse) -> None:
    src, _ = dirs
    bundle = src / "b.zip"
    bundle.write_bytes(b"this is not a zip file")
    refuse(bundle, Unprocessable, "not a valid ZIP")


@pytest.mark.parametrize(
    "name",
    [
        "../evil",
        "../../evil",
        "artifact/../../evil",
        "/etc/passwd",
        "//etc/passwd",
        "artifact\\..\\..\\evil",
        "C:/evil",
        "artifact/./model.onnx",
        "artifact//model.onnx",
        "artifact/",
    ],
)
def test_unsafe_member_names_are_refused(
    dirs: tuple[Path, Path], refuse: Refuse, name: str
) -> None:
    src, _ = dirs
    bundle = raw_zip(src / "b.zip", [*standard_members(), (member(name), b"pwned")])
    refuse(bundle, Unprocessable, "unsafe member name|not a plain file")


def test_artifact_named_by_traversal_is_refused(dirs: tuple[Path, Path], refuse: Refuse) -> None:
    src, _ = dirs
    manifest = make_manifest()
    bundle = raw_zip(
        src / "b.zip",
        [(member("manifest.json"), manifest_bytes(manifest)), (member("../evil"), ARTIFACT)],
    )
    refuse(bundle, Unprocessable, "unsafe member name")


def test_nul_in_member_name_is_refused(dirs: tuple[Path, Path], refuse: Refuse) -> None:
    src, _ = dirs
    bundle = raw_zip(
        src / "b.zip",
        [
            (member("manifest.json"), manifest_bytes(make_manifest())),
            (member("artifact/model.onnxZ.sh", compress=zipfile.ZIP_STORED), ARTIFACT),
        ],
    )
    bundle.write_bytes(bundle.read_bytes().replace(b"model.onnxZ.sh", b"model.onnx\x00.sh"))
    refuse(bundle, Unprocessable, "unsafe member name")


@pytest.mark.parametrize("kind", [stat.S_IFLNK, stat.S_IFCHR, stat.S_IFIFO, stat.S_IFDIR])
def test_links_and_devices_are_refused(dirs: tuple[Path, Path], refuse: Refuse, kind: int) -> None:
    src, _ = dirs
    manifest = make_manifest(b"/etc/passwd")
    bundle = raw_zip(
        src / "b.zip",
        [
            (member("manifest.json"), manifest_bytes(manifest)),
            (member("artifact/model.onnx", mode=(kind | 0o777) << 16), b"/etc/passwd"),
        ],
    )
    refuse(bundle, Unprocessable, "not a plain file")


def test_extra_member_is_refused(dirs: tuple[Path, Path], refuse: Refuse) -> None:
    src, _ = dirs
    bundle = raw_zip(src / "b.zip", [*standard_members(), (member("README.txt"), b"hi")])
    refuse(bundle, Unprocessable, "unexpected member 'README.txt'")


def test_second_artifact_is_refused(dirs: tuple[Path, Path], refuse: Refuse) -> None:
    src, _ = dirs
    bundle = raw_zip(src / "b.zip", [*standard_members(), (member("artifact/other.bin"), b"x")])
    refuse(bundle, Unprocessable, "more than one artifact")


def test_too_many_members_are_refused(dirs: tuple[Path, Path], refuse: Refuse) -> None:
    src, _ = dirs
    extra = [(member(f"junk{i}"), b"") for i in range(10)]
    bundle = raw_zip(src / "b.zip", [*standard_members(), *extra])
    refuse(bundle, Unprocessable, "at most 8")


def test_duplicate_members_are_refused(dirs: tuple[Path, Path], refuse: Refuse) -> None:
    src, _ = dirs
    members = standard_members()
    with pytest.warns(UserWarning, match="Duplicate name"):
        bundle = raw_zip(src / "b.zip", [*members, members[1]])
    refuse(bundle, Unprocessable, "two members named")


@pytest.mark.parametrize("which", ["manifest", "artifact"])
def test_missing_member_is_refused(dirs: tuple[Path, Path], refuse: Refuse, which: str) -> None:
    src, _ = dirs
    manifest_member, artifact_member = standard_members()
    kept = [artifact_member] if which == "manifest" else [manifest_member]
    bundle = raw_zip(src / "b.zip", kept)
    refuse(bundle, Unprocessable, f"no {which}" if which == "artifact" else "no manifest.json")


@pytest.mark.parametrize(
    "content",
    [
        b"{not json",
        b"[]",
        b'{"format": "aimass-bundle"}',
        json.dumps({**json.loads(make_manifest().model_dump_json()), "sha256": "0" * 63}).encode(),
        json.dumps({**json.loads(make_manifest().model_dump_json()), "extra": 1}).encode(),
    ],
)
def test_invalid_manifest_is_refused(
    dirs: tuple[Path, Path], refuse: Refuse, content: bytes
) -> None:
    src, _ = dirs
    _, artifact_member = standard_members()
    bundle = raw_zip(src / "b.zip", [(member("manifest.json"), content), artifact_member])
    refuse(bundle, Unprocessable, "manifest.json is invalid")


def test_manifest_filename_that_is_a_path_is_refused(
    dirs: tuple[Path, Path], refuse: Refuse
) -> None:
    src, _ = dirs
    fields = json.loads(make_manifest().model_dump_json())
    fields["filename"] = "../../evil"
    bundle = raw_zip(
        src / "b.zip",
        [
            (member("manifest.json"), json.dumps(fields).encode()),
            (member("artifact/model.onnx"), ARTIFACT),
        ],
    )
    refuse(bundle, Unprocessable, "invalid")


def test_artifact_name_mismatch_is_refused(dirs: tuple[Path, Path], refuse: Refuse) -> None:
    src, _ = dirs
    bundle = raw_zip(
        src / "b.zip",
        [
            (member("manifest.json"), manifest_bytes(make_manifest(filename="model.onnx"))),
            (member("artifact/other.onnx"), ARTIFACT),
        ],
    )
    refuse(bundle, Unprocessable, "named 'other.onnx'")


def test_invalid_artifact_file_name_is_refused(dirs: tuple[Path, Path], refuse: Refuse) -> None:
    src, _ = dirs
    bundle = raw_zip(
        src / "b.zip",
        [
            (member("manifest.json"), manifest_bytes(make_manifest())),
            (member("artifact/.hidden"), ARTIFACT),
        ],
    )
    refuse(bundle, Unprocessable, "named '.hidden'")


def test_checksum_mismatch_is_refused(dirs: tuple[Path, Path], refuse: Refuse) -> None:
    src, _ = dirs
    tampered = bytes([ARTIFACT[0] ^ 1]) + ARTIFACT[1:]
    bundle = raw_zip(src / "b.zip", standard_members(tampered, make_manifest(ARTIFACT)))
    refuse(bundle, Unprocessable, "does not match the size and sha256")


def test_size_mismatch_is_refused(dirs: tuple[Path, Path], refuse: Refuse) -> None:
    src, _ = dirs
    bundle = raw_zip(src / "b.zip", standard_members(ARTIFACT + b"x", make_manifest(ARTIFACT)))
    refuse(bundle, Unprocessable, "size does not match")


def test_corrupt_artifact_data_is_refused(dirs: tuple[Path, Path], refuse: Refuse) -> None:
    src, _ = dirs
    bundle = raw_zip(src / "b.zip", standard_members())
    raw = bytearray(bundle.read_bytes())
    at = raw.find(ARTIFACT[:100])
    raw[at + 50] ^= 0xFF  # same size, wrong CRC
    bundle.write_bytes(bytes(raw))
    refuse(bundle, Unprocessable, "corrupt")


# --- zip bombs -----------------------------------------------------------------------------

BOMB = b"\x00" * (20 * 1024 * 1024)
SMALL_LIMIT = 1024 * 1024


def bomb(path: Path, manifest: BundleManifest) -> Path:
    members = [
        (member("manifest.json"), manifest_bytes(manifest)),
        (member("artifact/model.onnx", compress=zipfile.ZIP_DEFLATED), BOMB),
    ]
    raw_zip(path, members)
    assert path.stat().st_size < 100_000
    return path


def test_bomb_with_honest_sizes_is_refused(dirs: tuple[Path, Path], refuse: Refuse) -> None:
    src, _ = dirs
    bundle = bomb(src / "b.zip", make_manifest(BOMB))
    refuse(bundle, TooLarge, "more than 1048576 bytes", limit=SMALL_LIMIT)


def test_bomb_with_forged_zip_size_is_refused(dirs: tuple[Path, Path], refuse: Refuse) -> None:
    src, _ = dirs
    bundle = bomb(src / "b.zip", make_manifest(BOMB))
    forge_sizes(bundle, "artifact/model.onnx", 1000)
    refuse(bundle, (TooLarge, Unprocessable), None, limit=SMALL_LIMIT)


def test_bomb_with_forged_zip_and_manifest_sizes_is_refused(
    dirs: tuple[Path, Path], refuse: Refuse
) -> None:
    src, _ = dirs
    bundle = bomb(src / "b.zip", make_manifest(BOMB, size=SMALL_LIMIT - 10_000))
    forge_sizes(bundle, "artifact/model.onnx", SMALL_LIMIT - 10_000)
    refuse(bundle, (TooLarge, Unprocessable), None, limit=SMALL_LIMIT)


def test_lzma_member_is_refused(dirs: tuple[Path, Path], refuse: Refuse) -> None:
    src, _ = dirs
    manifest = make_manifest()
    bundle = raw_zip(
        src / "b.zip",
        [
            (member("manifest.json"), manifest_bytes(manifest)),
            (member("artifact/model.onnx", compress=zipfile.ZIP_LZMA), ARTIFACT),
        ],
    )
    refuse(bundle, Unprocessable, "stored or deflated")


def test_existing_file_in_dest_is_never_overwritten(dirs: tuple[Path, Path]) -> None:
    src, dest = dirs
    bundle = raw_zip(src / "b.zip", standard_members())
    (dest / "model.onnx").write_bytes(b"keep me")
    with pytest.raises(FileExistsError):
        read_bundle(bundle, dest, max_expanded_bytes=LIMIT)
    assert (dest / "model.onnx").read_bytes() == b"keep me"
