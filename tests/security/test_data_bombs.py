"""Data bombs: small dataset uploads that expand to gigabytes are refused before they cost memory.

Every bomb is built here, at test time, without ever holding its expanded form: a
Parquet file is written row group by row group from one modest dictionary-encoded
table, an NPZ member is deflated from a stream of zero chunks. The server runs as its
own process (``aimass server``), whose peak RSS (VmHWM) must stay under 1 GiB with
the default caps while the bomb is answered 413 or 422.
"""

from __future__ import annotations

import io
import subprocess
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from aimass.config import Settings
from conftest import LiveServer, free_port, start_server_process

pytestmark = pytest.mark.backend("sqlite")  # slow end to end: one backend (tests/conftest.py)

GIB = 1024**3
#: The server's whole process (this one) must stay below this while it answers a bomb.
RSS_CEILING = GIB


@pytest.fixture
def settings(request: pytest.FixtureRequest, tmp_path: Path, db_url: str) -> Settings:
    """The default upload and dataset caps, so the RSS bound holds with what ships."""
    overrides: dict[str, Any] = getattr(request, "param", {})
    return Settings(
        home=tmp_path / "home",
        database_url=db_url,
        artifacts=str(tmp_path / "artifacts"),
        port=free_port(),
        tune_gc=False,
        jobs=False,
        **overrides,
    )


# --- building the bombs --------------------------------------------------------------------


def _constant_parquet(path: Path, value: str, rows: int, group: int) -> Path:
    """``rows`` copies of ``value``: one dictionary entry and run-length-encoded zeros."""
    indices = pa.array(np.zeros(group, dtype=np.int32))
    table = pa.table({"s": pa.DictionaryArray.from_arrays(indices, pa.array([value]))})
    # store_schema=False: the file says "string", not "dictionary", as any writer's would.
    with pq.ParquetWriter(
        path, table.schema, compression="zstd", store_schema=False, write_statistics=False
    ) as writer:
        for _ in range(rows // group):
            writer.write_table(table, row_group_size=group)
    return path


def _nested_parquet(path: Path, value: str, rows: int, per_row: int) -> Path:
    """Lists of ``per_row`` copies of ``value``: the dictionary bomb one level down."""
    indices = pa.array(np.zeros(rows * per_row, dtype=np.int32))
    values = pa.DictionaryArray.from_arrays(indices, pa.array([value]))
    offsets = pa.array(np.arange(0, rows * per_row + 1, per_row, dtype=np.int32))
    table = pa.table({"l": pa.ListArray.from_arrays(offsets, values)})
    pq.write_table(table, path, compression="zstd", store_schema=False, write_statistics=False)
    return path


def _wide_parquet(path: Path, rows: int, columns: int, group: int) -> Path:
    table = pa.table({f"c{i}": np.zeros(group, dtype=np.int8) for i in range(columns)})
    with pq.ParquetWriter(path, table.schema, compression="zstd") as writer:
        for _ in range(rows // group):
            writer.write_table(table, row_group_size=group)
    return path


def _npz(path: Path, shape: tuple[int, ...], dtype: str, zeros: int, junk: int = 0) -> Path:
    """An NPZ whose ``x.npy`` header declares ``shape`` and whose body is ``zeros`` deflated."""
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        header, {"descr": dtype, "fortran_order": False, "shape": shape}
    )
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=1) as zf:
        with zf.open("x.npy", "w", force_zip64=True) as member:
            member.write(header.getvalue())
            _write_zeros(member, zeros)
        if junk:
            with zf.open("junk.bin", "w", force_zip64=True) as member:
                _write_zeros(member, junk)
    return path


def _write_zeros(out: Any, count: int) -> None:
    chunk = bytes(16 * 1024 * 1024)
    while count > 0:
        out.write(chunk[:count])
        count -= len(chunk)


@pytest.fixture(scope="module")
def bombs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Every bomb, built once for both backends; each is small on disk."""
    folder = tmp_path_factory.mktemp("bombs")
    made = {
        # 200 million rows of "x": the 877 KB file that took a server to 6.3 GiB.
        "rows.parquet": _constant_parquet(folder / "rows.parquet", "x", 200_000_000, 4_000_000),
        # Five million rows of one 1 KiB value: the footer declares ~10 KB, decoding makes 5 GB.
        "dictionary.parquet": _constant_parquet(
            folder / "dictionary.parquet", "v" * 1024, 5_000_000, 1_000_000
        ),
        # The same inside lists: a million rows of five 1 KiB values.
        "nested.parquet": _nested_parquet(folder / "nested.parquet", "n" * 1024, 1_000_000, 5),
        "cells.parquet": _wide_parquet(folder / "cells.parquet", 4_000_000, 30, 1_000_000),
        # A header that declares ten billion rows over a few bytes of data.
        "header.npz": _npz(folder / "header.npz", (10**10,), "<f8", 64),
        # 1.28 GB of zeros, deflated, that its header honestly declares.
        "zeros.npz": _npz(folder / "zeros.npz", (8_000_000, 10), "<c16", 8_000_000 * 10 * 16),
        # A header that declares ten values over 1.2 GB of zeros.
        "liar.npz": _npz(folder / "liar.npz", (10,), "<f8", 1_200_000_000),
        # A valid array beside a 1.1 GB member that is no array (numpy.load reads it whole).
        "junk.npz": _npz(folder / "junk.npz", (10,), "<f8", 80, junk=1_100_000_000),
    }
    for path in made.values():
        assert path.stat().st_size < 6 * 1024 * 1024, path.name
    # A CSV is not compressed: 20 MB of "0\n" is its cheapest form of ten million rows.
    rows_csv = folder / "rows.csv"
    with rows_csv.open("wb") as out:
        out.write(b"x\n" + b"0\n" * 1_000_000 * 10 + b"1\n")
    made["rows.csv"] = rows_csv
    return made


# --- measuring -----------------------------------------------------------------------------


def _peak_rss(pid: int) -> int:
    """The process's highest resident memory so far (VmHWM), in bytes."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise AssertionError(f"no VmHWM for pid {pid}")


class PeakRss:
    """The server process's peak resident memory (VmHWM) after the block ran.

    VmHWM never goes down, so it covers start-up and every request the server
    answered until now: under the ceiling means no spike passed it.
    """

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.peak = 0

    def __enter__(self) -> PeakRss:
        return self

    def __exit__(self, *exc: object) -> None:
        self.peak = _peak_rss(self.pid)

    def assert_under(self, ceiling: int) -> None:
        """Fail when the server went past ``ceiling`` bytes at any time so far."""
        assert self.peak < ceiling, f"server peak RSS {self.peak / 2**20:.0f} MiB"


@pytest.fixture
def live_server(settings: Settings) -> Iterator[LiveServer]:
    """The real server as its own process (``aimass server``), so its peak RSS is its own."""
    process = start_server_process(settings)
    url = f"http://127.0.0.1:{settings.port}"
    try:
        _SERVER_PIDS[settings.port] = process.pid
        yield LiveServer(
            url=url,
            admin_token=settings.token_file.read_text().strip(),
            home=settings.home,
            settings=settings,
        )
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


#: The server process of each running test's server, by port.
_SERVER_PIDS: dict[int, int] = {}


def _upload(http: httpx.Client, name: str, path: Path) -> tuple[httpx.Response, PeakRss]:
    pid = _SERVER_PIDS[httpx.URL(str(http.base_url)).port or 0]
    with path.open("rb") as fh, PeakRss(pid) as rss:
        response = http.post(f"/api/v1/datasets/{name}/versions", files={"file": (path.name, fh)})
    return response, rss


def _assert_refused(
    http: httpx.Client, live_server: Any, path: Path, status: int, *needles: str
) -> None:
    response, rss = _upload(http, "bomb", path)
    assert response.status_code == status, response.text
    message = response.json()["error"]["message"]
    for needle in needles:
        assert needle in message, message
    rss.assert_under(RSS_CEILING)
    # Nothing half-registered: no dataset row, no stored bytes.
    assert http.get("/api/v1/datasets/bomb").status_code == 404
    stored = Path(live_server.settings.resolved_artifacts)
    kept = [p.name for p in stored.rglob("*") if p.is_file()] if stored.exists() else []
    assert kept == []


Check = Callable[..., None]


@pytest.fixture
def refused(http: httpx.Client, live_server: Any) -> Iterator[Check]:
    """Upload a file and check it is refused with a status and a message, in bounded memory."""

    def check(path: Path, status: int, *needles: str) -> None:
        _assert_refused(http, live_server, path, status, *needles)

    yield check


# --- the holes -----------------------------------------------------------------------------


def test_parquet_row_bomb_is_refused_from_its_footer(
    bombs: dict[str, Path], refused: Check
) -> None:
    refused(bombs["rows.parquet"], 413, "200,000,000 rows", "AIMASS_DATASET_MAX_ROWS")


def test_parquet_cell_bomb_is_refused_from_its_footer(
    bombs: dict[str, Path], refused: Check
) -> None:
    refused(bombs["cells.parquet"], 413, "120,000,000 cells", "AIMASS_DATASET_MAX_CELLS")


def test_parquet_dictionary_bomb_is_refused_before_it_is_decoded(
    bombs: dict[str, Path], refused: Check
) -> None:
    # The footer declares almost nothing: only counting the decoded text catches this one.
    meta = pq.ParquetFile(bombs["dictionary.parquet"]).metadata
    declared = sum(meta.row_group(g).total_byte_size for g in range(meta.num_row_groups))
    assert declared < 1024 * 1024
    refused(bombs["dictionary.parquet"], 413, "bytes in memory", "AIMASS_DATASET_MAX_BYTES")


def test_nested_parquet_dictionary_bomb_is_refused_before_it_is_decoded(
    bombs: dict[str, Path], refused: Check
) -> None:
    refused(bombs["nested.parquet"], 413, "bytes in memory", "AIMASS_DATASET_MAX_BYTES")


def test_npz_header_bomb_is_refused_before_loading(bombs: dict[str, Path], refused: Check) -> None:
    refused(bombs["header.npz"], 413, "10,000,000,000 rows", "AIMASS_DATASET_MAX_ROWS")


def test_npz_deflated_zeros_bomb_is_refused_from_its_header(
    bombs: dict[str, Path], refused: Check
) -> None:
    refused(bombs["zeros.npz"], 413, "1,280,000,000 bytes", "AIMASS_DATASET_MAX_BYTES")


def test_npz_member_larger_than_its_header_is_refused(
    bombs: dict[str, Path], refused: Check
) -> None:
    refused(bombs["liar.npz"], 413, "AIMASS_DATASET_MAX_BYTES")


def test_npz_member_that_is_no_array_is_refused_unread(
    bombs: dict[str, Path], refused: Check
) -> None:
    refused(bombs["junk.npz"], 422, "junk.bin", ".npy")


def test_csv_row_bomb_is_refused_while_counting(bombs: dict[str, Path], refused: Check) -> None:
    refused(bombs["rows.csv"], 413, "10,000,001 rows", "AIMASS_DATASET_MAX_ROWS")


def test_csv_of_too_many_columns_is_refused_from_its_header(tmp_path: Path, refused: Check) -> None:
    path = tmp_path / "wide.csv"
    path.write_bytes(b",".join(b"c%d" % i for i in range(20_000)) + b"\n" + b"1," * 19_999 + b"1\n")
    refused(path, 413, "20,000 columns", "10,000")


# A CSV cell takes at least a byte, so passing the default 100 M cells needs a 100 MB
# upload; a lower cap shows the same count at a thousandth of the cost.
@pytest.mark.parametrize("settings", [{"dataset_max_cells": 1_000_000}], indirect=True)
def test_csv_cell_bomb_is_refused_while_counting(tmp_path: Path, refused: Check) -> None:
    path = tmp_path / "cells.csv"
    path.write_bytes(
        b",".join(b"c%d" % i for i in range(100)) + b"\n" + (b"," * 99 + b"\n") * 10_001
    )
    refused(path, 413, "1,000,100 cells", "AIMASS_DATASET_MAX_CELLS")


def test_ordinary_datasets_still_upload_under_the_default_caps(
    tmp_path: Path, http: httpx.Client
) -> None:
    import pandas as pd

    frame = pd.DataFrame(
        {
            "x": np.arange(50_000, dtype="float64"),
            "city": ["Paris", "Lyon", "Nice", "Brest", "Metz"] * 10_000,
            "kind": pd.Categorical(["a", "b"] * 25_000),
        }
    )
    parquet = tmp_path / "d.parquet"
    frame.to_parquet(parquet, row_group_size=7_000)
    csv = tmp_path / "d.csv"
    frame.to_csv(csv, index=False)
    npz = tmp_path / "d.npz"
    np.savez_compressed(npz, X=np.ones((50_000, 3)), y=np.arange(50_000))
    for name, path in (("p", parquet), ("c", csv), ("n", npz)):
        response, rss = _upload(http, name, path)
        assert response.status_code == 201, response.text
        body = response.json()
        assert body["num_rows"] == 50_000
        rss.assert_under(RSS_CEILING)
    columns = {
        c["name"]: c for c in http.get("/api/v1/datasets/p/versions/1").json()["profile"]["columns"]
    }
    assert columns["city"]["top"] == {k: 10_000 for k in ("Paris", "Lyon", "Nice", "Brest", "Metz")}
    assert columns["kind"]["top"] == {"a": 25_000, "b": 25_000}
    assert columns["x"]["mean"] == pytest.approx(24_999.5)
