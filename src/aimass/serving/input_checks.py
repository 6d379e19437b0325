"""Checks on parsed inference inputs: missing values, and table columns matched by name.

Both run on the hot path, so they cost a few microseconds for one row: the
missing-value check is one ``isnan(...).any()`` per float input, and finding
where the missing value is happens only when there is one.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from aimass.errors import InvalidInput

if TYPE_CHECKING:
    from collections.abc import Mapping

    from numpy.typing import NDArray

    from aimass.flavors.signature import Signature, TensorSpec

    Array = NDArray[Any]


def check_missing(inputs: Mapping[str, Array], signature: Signature | None) -> None:
    """Raise InvalidInput naming where a float input holds NaN, unless the model accepts it."""
    if signature is not None and signature.allows_missing:
        return
    for name, array in inputs.items():
        if array.dtype.kind == "f" and np.isnan(array).any():
            raise InvalidInput(_where(name, array, signature))


def _where(name: str, array: Array, signature: Signature | None) -> str:
    position = tuple(int(i) for i in np.argwhere(np.isnan(array))[0])
    place = f"at row {position[0]}"
    if len(position) == 2:
        columns = _columns_of(name, signature)
        column = position[1]
        if columns is not None and column < len(columns):
            place += f", column {columns[column]!r} (column {column})"
        else:
            place += f", column {column}"
    elif len(position) > 2:
        place += f", position {list(position[1:])}"
    return (
        f"input {name!r} has a missing value {place} (counting from 0); "
        "this model does not accept missing values"
    )


def _columns_of(name: str, signature: Signature | None) -> list[str] | None:
    if signature is None:
        return None
    for spec in signature.inputs:
        if spec.name == name:
            return spec.columns
    return None


def match_columns(
    given: list[str], table: list[list[object]], spec: TensorSpec
) -> tuple[list[list[object]], list[str]]:
    """Reorder record columns to the spec's named columns; returns the rows and ignored names.

    A column the model needs and the records lack is a 400 naming it; columns
    the model does not know are dropped and returned so the answer can say so.
    """
    wanted = spec.columns or []
    index = {column: i for i, column in enumerate(given)}
    missing = [column for column in wanted if column not in index]
    if missing:
        raise InvalidInput(
            f"input {spec.name!r} lacks the column{'s' if len(missing) > 1 else ''} "
            + ", ".join(repr(c) for c in missing)
            + "; the model takes "
            + ", ".join(repr(c) for c in wanted)
        )
    known = set(wanted)
    ignored = [column for column in given if column not in known]
    if not ignored and given == wanted:
        return table, []
    order = [index[column] for column in wanted]
    return [[row[i] for i in order] for row in table], ignored
