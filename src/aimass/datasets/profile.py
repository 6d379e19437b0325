"""Reading uploaded dataset files (CSV, Parquet, NPZ) and profiling their columns.

Everything here treats the file as untrusted: NPZ is read without pickle, every
parse failure becomes :class:`~aimass.errors.Unprocessable`, and no message
names a filesystem path.
"""

from __future__ import annotations

import math
import posixpath
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, get_args

from aimass.datasets._read import read_csv, read_npz, read_parquet
from aimass.datasets.entities import ColumnProfile, ColumnSchema, DatasetFormat, Histogram, Profile
from aimass.datasets.limits import DatasetLimits
from aimass.errors import AimassError, InvalidInput, TooLarge, Unprocessable

if TYPE_CHECKING:
    import numpy
    import numpy.typing as npt
    import pandas

FORMATS: tuple[str, ...] = get_args(DatasetFormat)
QUANTILES: tuple[float, ...] = (0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99)

_SUFFIXES: dict[str, DatasetFormat] = {
    ".csv": "csv",
    ".parquet": "parquet",
    ".pq": "parquet",
    ".npz": "npz",
}
_PARQUET_MAGIC = b"PAR1"
_ZIP_MAGIC = b"PK\x03\x04"
_MESSAGE_LIMIT = 200
_TOP_KEY_LIMIT = 256


def detect_format(filename: str, head: bytes, declared: str | None = None) -> DatasetFormat:
    """Tell a dataset file's format: the declared one, else its magic bytes, suffix or text."""
    if declared is not None:
        fmt = declared.strip().lower()
        if fmt not in FORMATS:
            raise InvalidInput(
                f"unknown dataset format {declared!r}: use one of {', '.join(FORMATS)}"
            )
        return _as_format(fmt)
    if head.startswith(_PARQUET_MAGIC):
        return "parquet"
    if head.startswith(_ZIP_MAGIC):
        return "npz"
    suffix = posixpath.splitext(filename.lower())[1]
    if suffix in _SUFFIXES:
        return _SUFFIXES[suffix]
    if _looks_like_text(head):
        return "csv"
    raise InvalidInput(
        "could not tell the format of the upload from its name or content; "
        "upload CSV, Parquet or NPZ or pass format="
    )


def read_table(
    path: Path,
    fmt: DatasetFormat,
    max_rows: int | None = None,
    *,
    limits: DatasetLimits | None = None,
) -> pandas.DataFrame:
    """Read a dataset file into a DataFrame; any parse failure is Unprocessable.

    With ``limits``, what the file declares is checked before anything is read and
    what is decoded is counted as it is read (see :mod:`aimass.datasets.limits`); a
    file past a cap is :class:`~aimass.errors.TooLarge`. Without, the file is trusted
    to fit (the job runtime reading its own dataset, the zoo's built-in ones).
    """
    if fmt not in FORMATS:
        raise InvalidInput(f"unknown dataset format {fmt!r}: use one of {', '.join(FORMATS)}")
    try:
        # The libraries get an open file, never the path, so their messages cannot name it.
        with path.open("rb") as fh:
            if fmt == "csv":
                df = read_csv(fh, max_rows, limits)
            elif fmt == "parquet":
                df = read_parquet(fh, max_rows, limits)
            else:
                df = read_npz(fh, max_rows, limits)
    except AimassError:
        raise
    except MemoryError:
        raise TooLarge(f"the {fmt} file does not fit in memory") from None
    except Exception as exc:
        raise Unprocessable(f"could not read the file as {fmt}: {_reason(exc, path)}") from None
    if df.shape[1] == 0:
        raise Unprocessable(f"the {fmt} file has no columns")
    return df


def profile_table(
    df: pandas.DataFrame, bins: int = 10, top_k: int = 10
) -> tuple[list[ColumnSchema], Profile]:
    """The schema and statistical profile of a table; NaN and inf never appear in it."""
    schema: list[ColumnSchema] = []
    columns: list[ColumnProfile] = []
    for i in range(df.shape[1]):
        # By position, so duplicate column names cannot confuse the lookup.
        series = df.iloc[:, i]
        name = str(df.columns[i])
        dtype = str(series.dtype)
        schema.append(ColumnSchema(name=name, dtype=dtype))
        if _is_numeric(series):
            columns.append(_profile_numeric(name, dtype, series, bins))
        else:
            columns.append(_profile_categorical(name, dtype, series, top_k))
    return schema, Profile(num_rows=int(df.shape[0]), columns=columns)


def _reason(exc: BaseException, path: Path) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    for leak in {str(path), str(path.resolve()), str(path.parent)}:
        text = text.replace(leak, "<file>")
    if len(text) > _MESSAGE_LIMIT:
        text = text[: _MESSAGE_LIMIT - 3] + "..."
    return text


# --- detection -----------------------------------------------------------------------------


def _as_format(value: str) -> DatasetFormat:
    if value == "csv":
        return "csv"
    if value == "parquet":
        return "parquet"
    return "npz"


def _looks_like_text(head: bytes) -> bool:
    if b"\x00" in head:
        return False
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as exc:
        # The head may cut a multi-byte character in two; only its last bytes may fail.
        return exc.reason == "unexpected end of data" and exc.start >= len(head) - 3
    return True


# --- profiling -----------------------------------------------------------------------------


def _is_numeric(series: pandas.Series) -> bool:
    from pandas.api import types

    dtype = series.dtype
    return bool(
        types.is_numeric_dtype(dtype)
        and not types.is_bool_dtype(dtype)
        and not types.is_complex_dtype(dtype)
    )


def _finite(value: Any) -> float | None:
    number = float(value)
    return number if math.isfinite(number) else None


def _profile_numeric(name: str, dtype: str, series: pandas.Series, bins: int) -> ColumnProfile:
    import numpy

    values: numpy.ndarray[Any, numpy.dtype[numpy.float64]] = series.to_numpy(
        dtype="float64", na_value=numpy.nan
    )
    missing = int(numpy.isnan(values).sum())
    finite = values[numpy.isfinite(values)]
    profile = ColumnProfile(name=name, dtype=dtype, count=len(values) - missing, missing=missing)
    if finite.size == 0:
        return profile
    with numpy.errstate(all="ignore"):
        profile.min = _finite(finite.min())
        profile.max = _finite(finite.max())
        profile.mean = _finite(finite.mean())
        profile.std = _finite(finite.std(ddof=1)) if finite.size > 1 else None
        # finite is this function's own copy: partition it in place, not a second copy.
        quantiles = numpy.quantile(finite, QUANTILES, overwrite_input=True)
    profile.quantiles = {
        str(q): v for q, v in zip(QUANTILES, map(_finite, quantiles), strict=True) if v is not None
    }
    profile.histogram = _histogram(finite, bins)
    return profile


def _histogram(finite: npt.NDArray[numpy.float64], bins: int) -> Histogram | None:
    import numpy

    if bins < 1:
        return None
    try:
        with numpy.errstate(all="ignore"):
            counts, edges = numpy.histogram(finite, bins=bins)
    except ValueError:  # a range too wide for float64 bin edges
        return None
    if not numpy.isfinite(edges).all():
        return None
    return Histogram(edges=[float(e) for e in edges], counts=[int(c) for c in counts])


def _profile_categorical(name: str, dtype: str, series: pandas.Series, top_k: int) -> ColumnProfile:
    missing = int(series.isna().sum())
    try:
        counts = series.value_counts(dropna=True, sort=True)
    except TypeError:  # unhashable cells (lists, dicts): count their text
        counts = series.dropna().astype(str).value_counts(sort=True)
    top: dict[str, int] = {}
    for value, count in _head(counts, top_k):
        # A profile is stored and served whole: one huge value must not become a huge key.
        key = _shorten(str(value))
        top[key] = top.get(key, 0) + int(count)
    return ColumnProfile(
        name=name,
        dtype=dtype,
        count=len(series) - missing,
        missing=missing,
        top=top,
        distinct=len(counts),
    )


def _head(counts: pandas.Series, k: int) -> Iterator[tuple[Any, Any]]:
    if k <= 0:
        return iter(())
    return iter(counts.iloc[:k].items())


def _shorten(text: str) -> str:
    return text if len(text) <= _TOP_KEY_LIMIT else text[: _TOP_KEY_LIMIT - 1] + "\u2026"
