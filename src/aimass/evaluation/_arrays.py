"""Turning caller input into checked 1-D arrays, with errors that say what is wrong."""

from __future__ import annotations

import math
from collections.abc import Sized
from typing import TYPE_CHECKING, Any

import numpy as np

from aimass.errors import Unprocessable

if TYPE_CHECKING:
    from numpy.typing import NDArray

    Array = NDArray[Any]


def column(name: str, values: object) -> Array:
    """Return ``values`` as a non-empty 1-D array; an (n, 1) column is flattened."""
    array = np.asarray(values)
    if array.ndim == 2 and array.shape[1] == 1:
        array = array[:, 0]
    if array.ndim != 1:
        raise Unprocessable(f"{name} must be one value per row; got shape {list(array.shape)}")
    if len(array) == 0:
        raise Unprocessable(f"{name} is empty")
    if array.dtype.kind == "f" and not np.isfinite(array).all():
        raise Unprocessable(f"{name} holds missing or infinite values")
    return array


def numbers(name: str, values: object) -> NDArray[np.float64]:
    """Return ``values`` as a non-empty 1-D float64 array of finite numbers."""
    array = column(name, values)
    if array.dtype.kind not in "biuf":
        raise Unprocessable(f"{name} must hold numbers; got {array.dtype} values")
    floats = array.astype(np.float64)
    if not np.isfinite(floats).all():
        raise Unprocessable(f"{name} holds missing or infinite values")
    return floats


def same_length(*named: tuple[str, Sized]) -> int:
    """Return the common length of the named sequences, or raise naming the mismatch."""
    lengths = {name: len(values) for name, values in named}
    if len(set(lengths.values())) > 1:
        described = ", ".join(f"{name} has {length}" for name, length in lengths.items())
        raise Unprocessable(f"the inputs differ in length: {described}")
    return next(iter(lengths.values()))


def finite(metrics: dict[str, Any], skipped: dict[str, str]) -> dict[str, float]:
    """Return the metrics as plain floats, moving any that are not finite into ``skipped``."""
    result: dict[str, float] = {}
    for name, value in metrics.items():
        number = float(value)
        if math.isfinite(number):
            result[name] = number
        else:
            skipped[name] = f"{name} is not finite for this data ({number})"
    return result


def json_scalar(value: object) -> str | int | float | bool:
    """A label as JSON holds it: numpy scalars become Python ones, other objects their str."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, str | int | float | bool):
        return value
    return str(value)
