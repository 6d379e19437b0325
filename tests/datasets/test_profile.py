"""Reading and profiling dataset uploads: CSV, Parquet and NPZ, all untrusted."""

from __future__ import annotations

import io
import pickle
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from aimass.datasets.limits import DatasetLimits
from aimass.datasets.profile import QUANTILES, detect_format, profile_table, read_table
from aimass.errors import InvalidInput, TooLarge, Unprocessable

CSV = """age,city,score,flag
31,Paris,1.5,true
,Lyon,2.5,false
45,Paris,,true
27,,4.0,false
52,Nice,inf,true
"""


def _write_npz(path: Path, **arrays: np.ndarray) -> Path:
    with path.open("wb") as fh:
        np.savez(fh, **arrays)  # type: ignore[arg-type]
    return path


# --- detect_format -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("filename", "head", "declared", "expected"),
    [
        ("data.bin", b"PAR1\x15\x04", None, "parquet"),
        ("data.csv", b"PAR1\x15\x04", None, "parquet"),
        ("data", b"PK\x03\x04\x14\x00", None, "npz"),
        ("x.CSV", b"\xff\xfe\x00", None, "csv"),
        ("x.pq", b"\x00\x01", None, "parquet"),
        ("x.parquet", b"", None, "parquet"),
        ("x.npz", b"\x00", None, "npz"),
        ("upload", "a,b\nçé,1\n".encode(), None, "csv"),
        ("upload", "a,é".encode()[:-1], None, "csv"),
        ("whatever.bin", b"PAR1", "npz", "npz"),
        ("whatever.bin", b"", "Parquet", "parquet"),
    ],
)
def test_detect_format(filename: str, head: bytes, declared: str | None, expected: str) -> None:
    assert detect_format(filename, head, declared) == expected


def test_detect_format_refuses_unknown_declared() -> None:
    with pytest.raises(InvalidInput, match="csv, parquet, npz"):
        detect_format("a.csv", b"a,b\n", "xlsx")


def test_detect_format_refuses_binary_without_hint() -> None:
    with pytest.raises(InvalidInput, match="pass format="):
        detect_format("blob", b"\x89PNG\r\n\x1a\n\x00\x00")


# --- read_table + profile_table ------------------------------------------------------------


def test_csv_profile_counts_missing_and_stats(tmp_path: Path) -> None:
    path = tmp_path / "d.csv"
    path.write_text(CSV)
    df = read_table(path, "csv")
    schema, profile = profile_table(df, bins=4, top_k=2)

    assert profile.num_rows == 5
    assert [(c.name, c.dtype) for c in schema][:1] == [("age", "float64")]
    cols = {c.name: c for c in profile.columns}

    age = cols["age"]
    ages = np.array([31, 45, 27, 52], dtype=float)
    assert (age.count, age.missing) == (4, 1)
    assert age.mean == pytest.approx(ages.mean())
    assert age.std == pytest.approx(ages.std(ddof=1))
    assert (age.min, age.max) == (27.0, 52.0)
    assert age.quantiles == {
        str(q): pytest.approx(v)
        for q, v in zip(QUANTILES, np.quantile(ages, QUANTILES), strict=True)
    }
    assert age.histogram is not None
    assert len(age.histogram.edges) == 5
    assert sum(age.histogram.counts) == 4

    # inf is present (not missing) but stays out of every statistic.
    score = cols["score"]
    assert (score.count, score.missing) == (4, 1)
    assert score.mean == pytest.approx(np.mean([1.5, 2.5, 4.0]))
    assert score.max == 4.0

    city = cols["city"]
    assert (city.count, city.missing, city.distinct) == (4, 1, 3)
    assert city.top == {"Paris": 2, **{k: 1 for k in list(city.top)[1:]}}
    assert len(city.top) == 2
    assert city.mean is None and city.histogram is None

    flag = cols["flag"]
    assert flag.dtype == "bool"
    assert flag.top == {"True": 3, "False": 2}
    assert flag.mean is None

    text = profile.model_dump_json()
    assert "NaN" not in text and "Infinity" not in text


def test_profile_all_missing_and_single_value_columns() -> None:
    df = pd.DataFrame(
        {
            "empty": [np.nan, np.nan],
            "one": [np.inf, 3.0],
            "ints": pd.array([1, None], dtype="Int64"),
        }
    )
    _, profile = profile_table(df)
    empty, one, ints = profile.columns
    assert (empty.count, empty.missing, empty.mean, empty.histogram) == (0, 2, None, None)
    assert (one.count, one.mean, one.std) == (2, 3.0, None)
    assert (ints.dtype, ints.count, ints.missing, ints.mean) == ("Int64", 1, 1, 1.0)


def test_csv_max_rows(tmp_path: Path) -> None:
    path = tmp_path / "d.csv"
    path.write_text(CSV)
    assert len(read_table(path, "csv", max_rows=2)) == 2


@pytest.mark.parametrize("content", [b"", b"\n\n", b'a,b\n1,"unterminated\n'])
def test_bad_csv_is_unprocessable(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "secret-dir" / "d.csv"
    path.parent.mkdir()
    path.write_bytes(content)
    with pytest.raises(Unprocessable) as info:
        read_table(path, "csv")
    assert "secret-dir" not in info.value.message


def test_parquet_round_trip(tmp_path: Path) -> None:
    df = pd.DataFrame({"x": np.arange(1000, dtype="float64"), "s": ["a", "b"] * 500})
    path = tmp_path / "d.parquet"
    df.to_parquet(path)
    assert detect_format("upload", path.read_bytes()[:8]) == "parquet"
    back = read_table(path, "parquet")
    pd.testing.assert_frame_equal(back, df, check_dtype=False)
    assert len(read_table(path, "parquet", max_rows=10)) == 10
    _, profile = profile_table(back)
    assert profile.columns[0].mean == pytest.approx(499.5)
    assert profile.columns[1].top == {"a": 500, "b": 500}


def test_corrupt_parquet_is_unprocessable(tmp_path: Path) -> None:
    good = tmp_path / "good.parquet"
    pd.DataFrame({"x": range(100)}).to_parquet(good)
    data = bytearray(good.read_bytes())
    data[8 : len(data) // 2] = b"\xff" * (len(data) // 2 - 8)
    bad = tmp_path / "private-folder" / "bad.parquet"
    bad.parent.mkdir()
    bad.write_bytes(b"PAR1" + b"\x00" * 50 + b"PAR1")
    truncated = tmp_path / "private-folder" / "truncated.parquet"
    truncated.write_bytes(bytes(data[: len(data) - 20]))
    for path in (bad, truncated):
        with pytest.raises(Unprocessable) as info:
            read_table(path, "parquet")
        assert "private-folder" not in info.value.message


def test_npz_2d_and_1d_arrays(tmp_path: Path) -> None:
    X = np.arange(12, dtype="float32").reshape(4, 3)
    y = np.array([0, 1, 0, 1])
    path = _write_npz(tmp_path / "d.npz", X=X, y=y)
    df = read_table(path, "npz")
    assert list(df.columns) == ["X_0", "X_1", "X_2", "y"]
    np.testing.assert_array_equal(df[["X_0", "X_1", "X_2"]].to_numpy(), X)
    np.testing.assert_array_equal(df["y"].to_numpy(), y)
    assert len(read_table(path, "npz", max_rows=2)) == 2


def test_npz_length_mismatch_names_the_arrays(tmp_path: Path) -> None:
    path = _write_npz(tmp_path / "d.npz", X=np.zeros((4, 2)), y=np.zeros(3))
    with pytest.raises(Unprocessable, match=r"same length.*X: 4.*y: 3"):
        read_table(path, "npz")


def test_npz_3d_array_is_unprocessable(tmp_path: Path) -> None:
    path = _write_npz(tmp_path / "d.npz", X=np.zeros((2, 2, 2)))
    with pytest.raises(Unprocessable, match="3 dimensions"):
        read_table(path, "npz")


class _Boom:
    """Unpickling this would create a marker file: proof that pickle ran."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[str, str]]:
        return (Path.write_text, (Path(self.marker), "pwned"))  # type: ignore[return-value]


def test_npz_object_array_is_refused_without_unpickling(tmp_path: Path) -> None:
    marker = tmp_path / "unpickled"
    objects = np.empty(2, dtype=object)
    objects[0] = _Boom(str(marker))
    objects[1] = "x"
    buf = io.BytesIO()
    np.savez(buf, y=np.arange(2), evil=objects)
    path = tmp_path / "d.npz"
    path.write_bytes(buf.getvalue())
    # Sanity: the payload really runs when unpickled.
    proof = tmp_path / "proof"
    pickle.loads(pickle.dumps(_Boom(str(proof))))
    assert proof.exists()

    with pytest.raises(Unprocessable, match="pickle"):
        read_table(path, "npz")
    assert not marker.exists()


def test_npz_compressed_bomb_is_refused_from_headers(tmp_path: Path) -> None:
    path = tmp_path / "d.npz"
    with path.open("wb") as fh:
        np.savez_compressed(fh, x=np.zeros(4_000_000))
    assert path.stat().st_size < 100_000
    with pytest.raises(TooLarge):
        read_table(path, "npz", limits=DatasetLimits(max_bytes=1_000_000))


def test_npz_with_lzma_member_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "d.npz"
    inner = io.BytesIO()
    np.save(inner, np.zeros(10))
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_LZMA) as zf:
        zf.writestr("x.npy", inner.getvalue())
    with pytest.raises(Unprocessable, match="stored or deflated"):
        read_table(path, "npz")


@pytest.mark.parametrize("content", [b"PK\x03\x04garbage", b"not a zip at all"])
def test_corrupt_npz_is_unprocessable(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "d.npz"
    path.write_bytes(content)
    with pytest.raises(Unprocessable):
        read_table(path, "npz")


def test_empty_npz_is_unprocessable(tmp_path: Path) -> None:
    path = tmp_path / "d.npz"
    with zipfile.ZipFile(path, "w"):
        pass
    with pytest.raises(Unprocessable):
        read_table(path, "npz")


def test_npz_member_that_is_no_array_is_refused(tmp_path: Path) -> None:
    path = _write_npz(tmp_path / "d.npz", y=np.arange(3))
    with zipfile.ZipFile(path, "a") as zf:
        zf.writestr("notes.txt", "numpy.load would return these bytes whole")
    with pytest.raises(Unprocessable, match=r"notes\.txt.*\.npy"):
        read_table(path, "npz")


def test_top_values_are_shortened_in_the_profile() -> None:
    _, profile = profile_table(pd.DataFrame({"s": ["x" * 10_000] * 3 + ["y"]}))
    top = profile.columns[0].top
    assert max(len(k) for k in top) == 256
    assert list(top.values()) == [3, 1]


@pytest.mark.parametrize(
    ("fmt", "limits", "needle"),
    [
        ("csv", DatasetLimits(max_rows=3), "AIMASS_DATASET_MAX_ROWS"),
        ("csv", DatasetLimits(max_columns=1), "columns"),
        ("parquet", DatasetLimits(max_cells=10), "AIMASS_DATASET_MAX_CELLS"),
        ("parquet", DatasetLimits(max_bytes=100), "AIMASS_DATASET_MAX_BYTES"),
        ("npz", DatasetLimits(max_rows=3), "AIMASS_DATASET_MAX_ROWS"),
        ("npz", DatasetLimits(max_cells=10), "AIMASS_DATASET_MAX_CELLS"),
    ],
)
def test_limits_refuse_each_format(
    tmp_path: Path, fmt: str, limits: DatasetLimits, needle: str
) -> None:
    frame = pd.DataFrame({"x": np.arange(20.0), "s": ["ab"] * 20})
    path = tmp_path / f"d.{fmt}"
    if fmt == "csv":
        # Written past the small-file shortcut, so the rows are counted.
        frame.to_csv(path, index=False)
        path.write_text(path.read_text() + "1,cd\n" * 60_000)
    elif fmt == "parquet":
        frame.to_parquet(path)
    else:
        _write_npz(path, x=np.arange(20.0), y=np.arange(20))
    with pytest.raises(TooLarge, match=needle):
        read_table(path, fmt, limits=limits)  # type: ignore[arg-type]
    assert len(read_table(path, fmt, limits=DatasetLimits())) >= 20  # type: ignore[arg-type]
