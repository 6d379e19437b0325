"""The model host's wire format: a JSON header, then raw array bytes. Never pickle.

Each message is an 8-byte little-endian header length, the header as UTF-8
JSON, then the bytes of each numeric array in header order. A numeric array is
described by ``{"name", "dtype", "shape"}`` with ``dtype`` from
:data:`NUMERIC_DTYPES` (so bytes never become Python objects); an array of
strings or other objects travels inside the header as a flat JSON list
(``{"name", "shape", "values"}``, bytes elements as ``{"b64": ...}``). The
reader checks every length against a cap before reading it, since the other
side may be a compromised model host.
"""

from __future__ import annotations

import base64
import json
import math
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from numpy.typing import NDArray

    Array = NDArray[Any]

#: Element types that travel as raw bytes (native byte order); anything else is refused.
NUMERIC_DTYPES = frozenset(
    {
        "bool",
        "int8",
        "int16",
        "int32",
        "int64",
        "uint8",
        "uint16",
        "uint32",
        "uint64",
        "float16",
        "float32",
        "float64",
    }
)
_LENGTH = 8

#: Reads exactly n bytes (fewer only at the end of the stream).
Reader = Callable[[int], bytes]


class WireError(Exception):
    """A message that breaks the format or a cap: the peer is broken or hostile."""


def encode(header: Mapping[str, Any], arrays: Mapping[str, Array] | None = None) -> bytes:
    """One message: ``header`` plus an ``arrays`` list describing ``arrays``, then their bytes."""
    described: list[dict[str, Any]] = []
    payloads: list[bytes] = []
    for name, value in (arrays or {}).items():
        array = np.asarray(value)
        if array.dtype.name in NUMERIC_DTYPES:
            native = np.ascontiguousarray(array, dtype=array.dtype.newbyteorder("="))
            described.append({"name": name, "dtype": native.dtype.name, "shape": native.shape})
            payloads.append(native.tobytes())
        else:
            values = [_json_value(v) for v in array.reshape(-1).tolist()]
            described.append({"name": name, "shape": array.shape, "values": values})
    body = json.dumps({**header, "arrays": described}, separators=(",", ":")).encode()
    return len(body).to_bytes(_LENGTH, "little") + body + b"".join(payloads)


def decode(read: Reader, limit: int) -> tuple[dict[str, Any], dict[str, Array]]:
    """Read one message; WireError when it breaks the format or holds more than ``limit`` bytes.

    EOFError when the stream ends before a message begins.
    """
    head = read(_LENGTH)
    if not head:
        raise EOFError("the stream ended")
    size = int.from_bytes(_exact(head, _LENGTH), "little")
    if size > limit:
        raise WireError(f"a message header of {size} bytes is over the {limit}-byte cap")
    try:
        header = json.loads(_exact(read(size), size))
    except ValueError as exc:
        raise WireError("a message header is not JSON") from exc
    if not isinstance(header, dict) or not isinstance(header.get("arrays", []), list):
        raise WireError("a message header is not an object with an arrays list")
    budget = limit - size
    arrays: dict[str, Array] = {}
    for item in header.pop("arrays", []):
        name, shape = _described(item)
        count = math.prod(shape)
        if "values" in item:
            arrays[name] = _object_array(item["values"], shape, count)
            continue
        dtype = item.get("dtype")
        if dtype not in NUMERIC_DTYPES:
            raise WireError(f"array {name!r} has a dtype that is not allowed: {dtype!r}")
        nbytes = count * np.dtype(dtype).itemsize
        budget -= nbytes
        if budget < 0:
            raise WireError(f"a message holds more than the {limit}-byte cap")
        data = bytearray(_exact(read(nbytes), nbytes))
        arrays[name] = np.frombuffer(data, dtype=dtype).reshape(shape)
    return header, arrays


def _described(item: object) -> tuple[str, tuple[int, ...]]:
    if not isinstance(item, dict):
        raise WireError("an array description is not an object")
    name, shape = item.get("name"), item.get("shape")
    if not isinstance(name, str) or not isinstance(shape, list):
        raise WireError("an array description needs a name and a shape")
    if not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape):
        raise WireError(f"array {name!r} has a bad shape")
    return name, tuple(shape)


def _object_array(values: object, shape: tuple[int, ...], count: int) -> Array:
    if not isinstance(values, list) or len(values) != count:
        raise WireError("an object array's values do not match its shape")
    array = np.empty(count, dtype=object)
    for i, value in enumerate(values):
        array[i] = _from_json(value)
    return array.reshape(shape)


def _json_value(value: object) -> object:
    if isinstance(value, bytes):
        return {"b64": base64.b64encode(value).decode()}
    if isinstance(value, np.generic):
        return value.item()
    if value is None or isinstance(value, str | int | float | bool):
        return value
    return str(value)


def _from_json(value: object) -> object:
    if isinstance(value, dict):
        encoded = value.get("b64")
        if not isinstance(encoded, str):
            raise WireError("an object array element is not a scalar")
        return base64.b64decode(encoded)
    if isinstance(value, list):
        raise WireError("an object array element is not a scalar")
    return value


def _exact(data: bytes, size: int) -> bytes:
    if len(data) != size:
        raise WireError("the stream ended inside a message")
    return data
