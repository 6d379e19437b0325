"""Readers of CSV, Parquet and NPZ uploads that refuse data bombs before they cost memory.

With ``limits`` set, each reader first checks what the file declares (the Parquet
footer's row, value and byte counts; each NPZ member's array header; the CSV's
size and header line), then counts what it actually decodes and stops at the first
batch past a cap. Text columns of Parquet are read dictionary-encoded and their
decoded size is counted before they are expanded, because a dictionary of one long
value repeated millions of times declares almost nothing in the footer.
"""

from __future__ import annotations

import csv
import io
import zipfile
from typing import IO, TYPE_CHECKING, Any

from aimass.datasets.limits import DatasetLimits, Tally, check_declared
from aimass.errors import TooLarge, Unprocessable

if TYPE_CHECKING:
    import numpy.typing as npt
    import pandas
    import pyarrow

_NPZ_MAX_MEMBERS = 4096
#: The longest header a .npy member may have before its data (format 1.0 and 2.0 alike).
_NPY_HEADER_MAX = 65_536
#: A CSV header line longer than this is not a header (4 MiB holds 10,000 long names).
_CSV_HEADER_LIMIT = 4 * 1024 * 1024
#: Cells per chunk or batch while counting: bounds the memory one step can take.
_STEP_CELLS = 1_000_000
#: The most memory one byte of CSV can become (a one-character text cell and its comma).
_CSV_EXPANSION = 64
#: Parquet physical types of fixed width, in bytes per value.
_PARQUET_WIDTHS = {"BOOLEAN": 1, "INT32": 4, "INT64": 8, "INT96": 12, "FLOAT": 4, "DOUBLE": 8}


# --- CSV -----------------------------------------------------------------------------------


def read_csv(fh: IO[bytes], max_rows: int | None, limits: DatasetLimits | None) -> pandas.DataFrame:
    """A CSV file as a DataFrame, counted against ``limits`` before it is materialised."""
    import pandas

    if limits is not None:
        _check_csv(fh, limits)
        fh.seek(0)
    return pandas.read_csv(fh, nrows=max_rows)


def _check_csv(fh: IO[bytes], limits: DatasetLimits) -> None:
    import pandas

    size = fh.seek(0, io.SEEK_END)
    fh.seek(0)
    header = fh.readline(_CSV_HEADER_LIMIT)
    if len(header) >= _CSV_HEADER_LIMIT and not header.endswith((b"\n", b"\r")):
        raise TooLarge(
            f"the CSV header line is longer than {_CSV_HEADER_LIMIT:,} bytes; "
            "the first line must name the columns"
        )
    text = header.decode("utf-8", errors="replace")
    columns = len(next(csv.reader([text]), [])) if text.strip() else 0
    check_declared("CSV", limits, columns=columns)
    # A row takes at least two bytes and a cell at least one, and no byte becomes more
    # than _CSV_EXPANSION bytes in memory: a small file cannot pass a cap, so skip the count.
    if (
        size // 2 + 1 <= limits.max_rows
        and size <= limits.max_cells
        and size * _CSV_EXPANSION <= limits.max_bytes
    ):
        return
    # Count in chunks that are thrown away, so only one chunk is ever in memory.
    fh.seek(0)
    tally = Tally("CSV", limits)
    chunk_rows = max(1, _STEP_CELLS // max(columns, 1))
    with pandas.read_csv(fh, chunksize=chunk_rows) as reader:
        for chunk in reader:
            tally.add(
                rows=len(chunk),
                cells=chunk.size,
                nbytes=int(chunk.memory_usage(deep=True, index=False).sum()),
            )


# --- Parquet -------------------------------------------------------------------------------


def read_parquet(
    fh: IO[bytes], max_rows: int | None, limits: DatasetLimits | None
) -> pandas.DataFrame:
    """A Parquet file as a DataFrame; its footer and decoded sizes checked against ``limits``."""
    import pyarrow
    import pyarrow.parquet as pq

    parquet = pq.ParquetFile(fh)
    schema = parquet.schema_arrow
    if limits is None and max_rows is None:
        return parquet.read().to_pandas()
    if limits is not None:
        _check_parquet_footer(parquet, max_rows, limits)
    tally = Tally("Parquet", limits or _UNBOUNDED)
    # Text leaves come back dictionary-encoded, so their decoded size is known before any
    # of it exists; everything else is read as the file's schema says.
    texts = _text_leaves(parquet, schema)
    try:
        table = _read_counted(fh, texts, schema, max_rows, tally)
    except pyarrow.ArrowNotImplementedError:
        # pyarrow cannot always hand back nested text dictionary-encoded; such columns
        # are then decoded as they are read and counted a batch at a time.
        flat = [path for path in texts if "." not in path]
        if flat == texts:
            raise
        tally = Tally("Parquet", limits or _UNBOUNDED)
        table = _read_counted(fh, flat, schema, max_rows, tally)
    # Every batch is counted and text is still encoded: only now is it expanded, and only
    # because its decoded size is known to fit.
    return table.cast(schema).to_pandas()


def _read_counted(
    fh: IO[bytes],
    texts: list[str],
    schema: pyarrow.Schema,
    max_rows: int | None,
    tally: Tally,
) -> pyarrow.Table:
    """Every batch of the file, counted as it comes; text leaves in ``texts`` still encoded."""
    import pyarrow
    import pyarrow.parquet as pq

    fh.seek(0)
    reader = pq.ParquetFile(fh, read_dictionary=texts or None)
    step = max(1, min(65536, _STEP_CELLS // max(reader.metadata.num_columns, 1)))
    remaining = max_rows
    batches: list[pyarrow.RecordBatch] = []
    # One row group at a time: a batch across two would need two dictionaries in one column.
    for group in range(reader.metadata.num_row_groups):
        if remaining is not None and remaining <= 0:
            break
        for batch in reader.iter_batches(batch_size=step, row_groups=[group]):
            if remaining is not None:
                if remaining <= 0:
                    break
                batch = batch.slice(0, remaining)
                remaining -= batch.num_rows
            nbytes = sum(
                _decoded_bytes(column, schema.field(i).type)
                for i, column in enumerate(batch.columns)
            )
            tally.add(rows=batch.num_rows, cells=batch.num_rows * batch.num_columns, nbytes=nbytes)
            batches.append(batch)
    return pyarrow.Table.from_batches(batches, schema=reader.schema_arrow)


_UNBOUNDED = DatasetLimits(max_rows=2**62, max_cells=2**62, max_bytes=2**62, max_columns=2**62)


def _check_parquet_footer(parquet: Any, max_rows: int | None, limits: DatasetLimits) -> None:
    """Refuse from the footer alone: rows, columns, leaf values and uncompressed bytes."""
    meta = parquet.metadata
    rows = int(meta.num_rows)
    columns = len(parquet.schema_arrow)
    check_declared("Parquet", limits, rows=rows if max_rows is None else min(rows, max_rows))
    check_declared("Parquet", limits, columns=max(columns, int(meta.num_columns)))
    if max_rows is not None:
        return  # a head read stops early; the running tally bounds it
    values = 0
    uncompressed = 0
    fixed = 0
    for g in range(meta.num_row_groups):
        group = meta.row_group(g)
        for c in range(group.num_columns):
            chunk = group.column(c)
            n = int(chunk.num_values)
            values += n
            uncompressed += int(chunk.total_uncompressed_size)
            physical = chunk.physical_type
            if physical in _PARQUET_WIDTHS:
                fixed += n * _PARQUET_WIDTHS[physical]
            elif physical == "FIXED_LEN_BYTE_ARRAY":
                fixed += n * int(parquet.schema.column(c).length or 0)
            else:  # BYTE_ARRAY: at least its offset
                fixed += n * 4
    check_declared(
        "Parquet",
        limits,
        cells=max(values, rows * columns),
        nbytes=max(uncompressed, fixed),
    )


def _text_leaves(parquet: Any, schema: pyarrow.Schema) -> list[str]:
    """Paths of the string and binary leaves to read dictionary-encoded.

    Only leaves under plain columns, lists and structs: :func:`_decoded_bytes` can
    measure those before decoding. Text inside other nesting (maps) is decoded as it is
    read and counted afterwards, one batch at a time.
    """
    names = schema.names
    measurable = {
        field.name
        for field in schema
        if names.count(field.name) == 1 and _lists_and_structs(field.type)
    }
    paths = []
    for i in range(parquet.metadata.num_columns):
        column = parquet.schema.column(i)
        if column.physical_type == "BYTE_ARRAY" and column.path.split(".")[0] in measurable:
            paths.append(column.path)
    return paths


def _lists_and_structs(kind: pyarrow.DataType) -> bool:
    import pyarrow

    if pyarrow.types.is_list(kind) or pyarrow.types.is_large_list(kind):
        return _lists_and_structs(kind.value_type)
    if pyarrow.types.is_struct(kind):
        return all(_lists_and_structs(kind.field(j).type) for j in range(kind.num_fields))
    return not pyarrow.types.is_nested(kind)


def _decoded_bytes(array: pyarrow.Array, target: pyarrow.DataType) -> int:
    """What ``array`` takes once cast to ``target``: its dictionaries of text decoded."""
    import pyarrow
    import pyarrow.compute as pc

    kind = array.type
    n = len(array)
    if pyarrow.types.is_dictionary(kind) and not pyarrow.types.is_dictionary(target):
        lengths = pc.binary_length(array.dictionary).take(array.indices)
        return int(pc.sum(lengths).as_py() or 0) + 8 * (n + 1) + n // 8 + 1
    if pyarrow.types.is_list(kind) or pyarrow.types.is_large_list(kind):
        # flatten() honours the list's offsets, so a sliced batch counts only its own values.
        return 8 * (n + 1) + n // 8 + 1 + _decoded_bytes(array.flatten(), target.value_type)
    if pyarrow.types.is_struct(kind):
        children = array.flatten()
        return (
            n // 8
            + 1
            + sum(_decoded_bytes(c, target.field(j).type) for j, c in enumerate(children))
        )
    return int(array.get_total_buffer_size())


# --- NPZ -----------------------------------------------------------------------------------


def read_npz(fh: IO[bytes], max_rows: int | None, limits: DatasetLimits | None) -> pandas.DataFrame:
    """NPZ arrays as columns, every member's header checked before any array is loaded."""
    import numpy
    import pandas

    names = _check_npz_members(fh, limits)
    fh.seek(0)
    columns: dict[str, npt.NDArray[Any]] = {}
    # allow_pickle=False is the security boundary: object arrays raise, nothing is unpickled.
    with numpy.load(fh, allow_pickle=False) as npz:
        for key in names:
            # Each member holds what its header declared, which was checked; numpy reads no more.
            array = npz[key]
            if max_rows is not None:
                array = array[:max_rows]
            if array.ndim == 1:
                columns[key] = array
            else:
                for j in range(array.shape[1]):
                    columns[f"{key}_{j}"] = array[:, j]
    return pandas.DataFrame(columns, copy=False)


def _check_npz_members(fh: IO[bytes], limits: DatasetLimits | None) -> list[str]:
    """The array names, after refusing from headers alone: pickle, shapes and sizes."""
    import numpy

    with zipfile.ZipFile(fh) as zf:
        infos = zf.infolist()
        if len(infos) > _NPZ_MAX_MEMBERS:
            raise Unprocessable(f"the NPZ file has more than {_NPZ_MAX_MEMBERS} members")
        lengths: dict[str, int] = {}
        column_names: set[str] = set()
        declared = cells = nbytes = 0
        for seen, info in enumerate(infos, start=1):
            # Only what numpy writes; other codecs decompress without a size bound.
            if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
                raise Unprocessable("NPZ members must be stored or deflated")
            if not info.filename.endswith(".npy"):
                # numpy.load would hand back such a member's whole content as bytes.
                raise Unprocessable(
                    f"NPZ member {info.filename[:100]!r} is not a .npy array; "
                    "save the file with numpy.savez"
                )
            key = info.filename[: -len(".npy")]
            shape, dtype = _npy_header(zf, info, key)
            if len(shape) not in (1, 2):
                raise Unprocessable(
                    f"array {key!r} has {len(shape)} dimensions; NPZ arrays must be 1-D or 2-D"
                )
            lengths[key] = int(shape[0])
            width = 1 if len(shape) == 1 else int(shape[1])
            if limits is not None:
                # Before the names are made: a (1, 10**9) array would be a billion of them.
                check_declared("NPZ", limits, columns=len(column_names) + width)
            names = [key] if len(shape) == 1 else [f"{key}_{j}" for j in range(width)]
            for column in names:
                if column in column_names:
                    raise Unprocessable(f"NPZ column name {column!r} occurs twice")
                column_names.add(column)
            count = int(numpy.prod(shape, dtype=numpy.int64))
            declared += int(info.file_size)
            cells += count
            nbytes += count * dtype.itemsize
            if limits is not None:
                check_declared("NPZ", limits, rows=lengths[key], cells=cells, nbytes=nbytes)
                # The zip's own sizes are checked too, but never trusted alone: numpy reads
                # no more than the header declared, and zipfile no more than file_size.
                check_declared("NPZ", limits, nbytes=declared - _NPY_HEADER_MAX * seen)
    if not lengths:
        raise Unprocessable("the NPZ file holds no arrays")
    if len(set(lengths.values())) > 1:
        sizes = ", ".join(f"{k}: {n}" for k, n in lengths.items())
        raise Unprocessable(f"NPZ arrays must all have the same length; got {sizes}")
    return list(lengths)


def _npy_header(zf: zipfile.ZipFile, info: zipfile.ZipInfo, key: str) -> tuple[Any, Any]:
    """A member's declared shape and dtype, read from its header without reading its data."""
    from numpy.lib import format as npformat

    with zf.open(info) as member:
        version = npformat.read_magic(member)
        if version == (1, 0):
            shape, _, dtype = npformat.read_array_header_1_0(member)
        else:
            shape, _, dtype = npformat.read_array_header_2_0(member)
    if dtype.hasobject:
        raise Unprocessable(
            f"array {key!r} holds Python objects, which would need pickle; "
            "only numeric, boolean and fixed-width string arrays are accepted"
        )
    return shape, dtype
