"""The Open Inference Protocol v2 over REST: requests and answers, in JSON or binary tensors.

Parsing checks every declared size before anything of that size is allocated:
the datatype is known, the shape is non-negative integers, the element count is
under the configured maximum and matches the data (or the binary byte count).
Binary tensors follow the binary tensor data extension as ``tritonclient.http``
sends it: the first ``Inference-Header-Content-Length`` bytes of the body are
the JSON header, then each input with ``parameters.binary_data_size`` takes that
many raw little-endian bytes, in order (BYTES: 4-byte length-prefixed elements).
"""

from __future__ import annotations

import struct
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import orjson

from aimass.errors import InvalidInput
from aimass.flavors.signature import DATATYPES
from aimass.serving.input_checks import check_missing, match_columns

if TYPE_CHECKING:
    from numpy.typing import NDArray

    from aimass.flavors.signature import Signature, TensorSpec

    Array = NDArray[Any]

#: numpy dtypes of the protocol's datatypes, little-endian as the wire is.
NUMPY_DTYPES: dict[str, np.dtype[Any]] = {
    name: np.dtype(dtype).newbyteorder("<") if dtype != "object" else np.dtype(object)
    for name, dtype in DATATYPES.items()
}
# Keyed by dtype object: ``dtype.name`` is computed in Python on every access.
_DATATYPE_OF: dict[np.dtype[Any], str] = {
    np.dtype(dtype): name for name, dtype in DATATYPES.items() if dtype != "object"
}
_DUMPS_OPTIONS = orjson.OPT_SERIALIZE_NUMPY
_LENGTH = struct.Struct("<I")
_SIMPLE_ID = (type(None), str)
_NUMBERS = (float, int)


class ProtocolError(InvalidInput):
    """A request the protocol cannot accept; the message names what is wrong (400)."""


@dataclass(slots=True)
class RequestedOutput:
    """An output the request asks for, and whether it wants it as binary data."""

    name: str
    binary: bool


@dataclass(slots=True)
class InferRequest:
    """A parsed inference request: inputs by name (conformed to the signature), wanted outputs."""

    id: str | None
    inputs: dict[str, Array]
    outputs: list[RequestedOutput] | None
    binary_output: bool


def parse_infer_request(
    body: bytes,
    header_length: int | None,
    signature: Signature | None,
    max_tensor_elements: int,
) -> InferRequest:
    """Parse an infer request body (JSON, or JSON header then binary tensors)."""
    size = len(body)
    if header_length is None:
        header_length = size
    elif header_length > size:
        raise ProtocolError(
            f"Inference-Header-Content-Length is {header_length} but the body has {size} bytes"
        )
    view = memoryview(body)
    try:
        doc = orjson.loads(view[:header_length] if header_length != size else body)
    except orjson.JSONDecodeError:
        raise ProtocolError("the request body is not valid JSON") from None
    if type(doc) is not dict:
        raise ProtocolError("the request must be a JSON object with an 'inputs' list")
    if header_length == size and signature is not None:
        simple = _simple_request(doc, signature, max_tensor_elements)
        if simple is not None:
            return simple
    raw_inputs = doc.get("inputs")
    if type(raw_inputs) is not list or not raw_inputs:
        raise ProtocolError("the request needs a non-empty 'inputs' list")
    offset = header_length
    arrays: dict[str, tuple[Array, str]] = {}
    for raw in raw_inputs:
        name, datatype, shape, count = _tensor_header(raw, max_tensor_elements)
        params = raw.get("parameters")
        nbytes = params.get("binary_data_size") if type(params) is dict else None
        if nbytes is not None:
            if type(nbytes) is not int or nbytes < 0:
                raise ProtocolError(f"input {name!r}: binary_data_size must be an integer >= 0")
            if header_length == size and offset == size and nbytes > 0:
                raise ProtocolError(
                    f"input {name!r} has binary data but the request has no "
                    "Inference-Header-Content-Length header or no bytes after it"
                )
            end = offset + nbytes
            if end > size:
                raise ProtocolError(
                    f"input {name!r} declares {nbytes} bytes of binary data; "
                    f"only {size - offset} remain in the body"
                )
            array = _from_binary(name, datatype, shape, count, view[offset:end])
            offset = end
        else:
            array = _from_json(name, datatype, shape, count, raw.get("data"))
        if name in arrays:
            raise ProtocolError(f"input {name!r} is given twice")
        arrays[name] = (array, datatype)
    if offset != size:
        raise ProtocolError(f"{size - offset} bytes of binary data follow the inputs unclaimed")
    request_id = doc.get("id")
    if request_id is not None and type(request_id) is not str:
        raise ProtocolError("'id' must be a string")
    params = doc.get("parameters")
    binary_output = type(params) is dict and params.get("binary_data_output") is True
    inputs = conform_inputs(arrays, signature)
    check_missing(inputs, signature)
    return InferRequest(
        id=request_id,
        inputs=inputs,
        outputs=_requested_outputs(doc.get("outputs"), binary_output),
        binary_output=binary_output,
    )


def _simple_request(
    doc: dict[str, Any], signature: Signature, max_elements: int
) -> InferRequest | None:
    """The common request in fewer steps, or None for the general parse to take it.

    Common: ``{"inputs": [...]}`` (with or without a string ``id``) holding one JSON
    input named and typed as the model's only (non-BYTES) input, with a flat list of
    numbers whose shape fits the spec. Its result is what the general parse gives; any
    request it is unsure of, malformed ones included, is left to that parse, so every
    error message stays the general one's (a missing value's included: same check).
    """
    request_id = doc.get("id")
    if len(doc) != (1 if request_id is None else 2) or type(request_id) not in _SIMPLE_ID:
        return None
    raw_inputs = doc.get("inputs")
    specs = signature.inputs
    if type(raw_inputs) is not list or len(raw_inputs) != 1 or len(specs) != 1:
        return None
    raw = raw_inputs[0]
    spec = specs[0]
    if (
        type(raw) is not dict
        or len(raw) != 4
        or raw.get("name") != spec.name
        or raw.get("datatype") != spec.datatype
        or spec.datatype == "BYTES"
    ):
        return None
    shape = raw.get("shape")
    data = raw.get("data")
    dims = spec.shape
    if (
        type(shape) is not list
        or type(data) is not list
        or len(shape) != len(dims)
        or len(shape) > 32  # the general parse's limit
        or not data
    ):
        return None
    count = 1
    for dim, want in zip(shape, dims, strict=True):
        if type(dim) is not int or dim < 0 or (want != -1 and want != dim):
            return None
        count *= dim
    if count > max_elements or len(data) != count or type(data[0]) not in _NUMBERS:
        return None
    try:
        array = np.array(data, dtype=NUMPY_DTYPES[spec.datatype])
    except (ValueError, TypeError, OverflowError):
        return None
    if array.size != count:
        return None
    inputs = {spec.name: array.reshape(shape)}
    check_missing(inputs, signature)
    return InferRequest(id=request_id, inputs=inputs, outputs=None, binary_output=False)


def _tensor_header(raw: object, max_elements: int) -> tuple[str, str, list[int], int]:
    if type(raw) is not dict:
        raise ProtocolError("each input must be an object with name, shape, datatype and data")
    name = raw.get("name")
    if type(name) is not str or not name:
        raise ProtocolError("each input needs a 'name' string")
    name = name[:256]
    datatype = raw.get("datatype")
    if type(datatype) is not str or datatype not in NUMPY_DTYPES:
        raise ProtocolError(
            f"input {name!r}: datatype {str(datatype)[:32]!r} is not one of {', '.join(DATATYPES)}"
        )
    shape = raw.get("shape")
    if type(shape) is not list or len(shape) > 32:
        raise ProtocolError(f"input {name!r}: 'shape' must be a list of at most 32 integers")
    count = 1
    for dim in shape:
        if type(dim) is not int or dim < 0:
            raise ProtocolError(f"input {name!r}: shape dimensions must be integers >= 0")
        count *= dim
    if count > max_elements:
        raise ProtocolError(
            f"input {name!r} has {count} elements, over the limit of {max_elements}"
        )
    return name, datatype, shape, count


def _from_binary(name: str, datatype: str, shape: list[int], count: int, data: memoryview) -> Array:
    dtype = NUMPY_DTYPES[datatype]
    if datatype == "BYTES":
        return _bytes_tensor(name, shape, count, data)
    need = count * dtype.itemsize
    if len(data) != need:
        raise ProtocolError(
            f"input {name!r} has {len(data)} bytes of binary data; shape {shape} of "
            f"{datatype} needs {need}"
        )
    return np.frombuffer(data, dtype=dtype, count=count).reshape(shape)


def _bytes_tensor(name: str, shape: list[int], count: int, data: memoryview) -> Array:
    items: list[bytes] = []
    position, end = 0, len(data)
    for _ in range(count):
        if position + 4 > end:
            raise ProtocolError(
                f"input {name!r}: binary BYTES data ends before element {len(items)}"
            )
        (length,) = _LENGTH.unpack_from(data, position)
        position += 4
        if position + length > end:
            raise ProtocolError(f"input {name!r}: binary BYTES element {len(items)} is cut short")
        items.append(bytes(data[position : position + length]))
        position += length
    if position != end:
        raise ProtocolError(
            f"input {name!r}: binary BYTES data holds more than the {count} elements of its shape"
        )
    array = np.empty(count, dtype=object)
    array[:] = items
    return array.reshape(shape)


def _from_json(name: str, datatype: str, shape: list[int], count: int, data: object) -> Array:
    if type(data) is not list:
        raise ProtocolError(f"input {name!r} needs 'data' as a list (or binary data)")
    dtype = NUMPY_DTYPES[datatype]
    nested = bool(data) and type(data[0]) is list
    if not nested and len(data) != count:
        raise ProtocolError(
            f"input {name!r}: shape {shape} has {count} elements but 'data' has {len(data)}"
        )
    first: object = data
    while type(first) is list and first:
        first = first[0]
    if datatype != "BYTES" and isinstance(first, str):
        raise ProtocolError(f"input {name!r} is {datatype} but its data holds strings")
    try:
        if datatype == "BYTES" and not nested:
            array = np.empty(len(data), dtype=object)
            array[:] = data
        else:
            array = np.array(data, dtype=dtype)
    except (ValueError, TypeError, OverflowError):
        raise ProtocolError(
            f"input {name!r}: 'data' does not hold {datatype} values in a regular nesting"
        ) from None
    if array.size != count:
        raise ProtocolError(
            f"input {name!r}: shape {shape} has {count} elements but 'data' has {array.size}"
        )
    return array.reshape(shape)


def conform_inputs(
    arrays: Mapping[str, tuple[Array, str]], signature: Signature | None
) -> dict[str, Array]:
    """Check inputs against the signature (names, datatype class, fixed dims) and cast them."""
    if signature is None or not signature.inputs:
        return {name: array for name, (array, _) in arrays.items()}
    result: dict[str, Array] = {}
    for spec in signature.inputs:
        given = arrays.get(spec.name)
        if given is None:
            raise ProtocolError(f"missing input {spec.name!r}")
        result[spec.name] = conform(spec, *given)
    if len(result) != len(arrays):
        unknown = [name for name in arrays if name not in result]
        raise ProtocolError(
            f"unknown input {unknown[0]!r}; the model takes "
            + ", ".join(repr(s.name) for s in signature.inputs)
        )
    return result


def conform(spec: TensorSpec, array: Array, datatype: str) -> Array:
    """Cast one input to its spec's dtype (numeric to numeric, same kind) and check its shape."""
    if datatype != spec.datatype:
        target = NUMPY_DTYPES[spec.datatype]
        if (
            datatype == "BYTES"
            or spec.datatype == "BYTES"
            or not np.can_cast(array.dtype, target, casting="same_kind")
        ):
            raise ProtocolError(
                f"input {spec.name!r} has datatype {datatype}; the model takes {spec.datatype}"
            )
        array = array.astype(target)
    dims = spec.shape
    shape = array.shape
    if len(dims) != len(shape):
        raise _shape_error(spec, shape)
    for index, dim in enumerate(dims):
        if dim != -1 and dim != shape[index]:
            raise _shape_error(spec, shape)
    return array


def _shape_error(spec: TensorSpec, shape: tuple[int, ...]) -> ProtocolError:
    return ProtocolError(
        f"input {spec.name!r} has shape {list(shape)}; the model takes {spec.shape} (-1: any size)"
    )


def _requested_outputs(raw: object, binary_default: bool) -> list[RequestedOutput] | None:
    if raw is None:
        return None
    if type(raw) is not list:
        raise ProtocolError("'outputs' must be a list of objects with a name")
    wanted: list[RequestedOutput] = []
    for item in raw:
        name = item.get("name") if type(item) is dict else None
        if type(name) is not str:
            raise ProtocolError("each requested output needs a 'name' string")
        params = item.get("parameters")
        binary = params.get("binary_data") if type(params) is dict else None
        wanted.append(
            RequestedOutput(name[:256], binary_default if binary is None else binary is True)
        )
    return wanted


def datatype_of(array: Array) -> str:
    """The protocol datatype of an array (strings and objects are BYTES)."""
    return _DATATYPE_OF.get(array.dtype, "BYTES")


def encode_infer_response(
    model_name: str,
    model_version: str,
    request_id: str | None,
    outputs: Mapping[str, Array],
    requested: list[RequestedOutput] | None,
    binary_output: bool,
) -> tuple[bytes, int | None]:
    """Encode the answer; returns the body and, when it carries binary data, the JSON length."""
    if requested is None and not binary_output:  # the common answer: every output, as JSON
        doc: dict[str, Any] = {"model_name": model_name, "model_version": model_version}
        if request_id is not None:
            doc["id"] = request_id
        doc["parameters"] = {}
        doc["outputs"] = [
            {
                "name": name,
                "datatype": _DATATYPE_OF.get(array.dtype, "BYTES"),
                "shape": list(array.shape),
                "data": _to_json(array),
            }
            for name, array in outputs.items()
        ]
        return orjson.dumps(doc, option=_DUMPS_OPTIONS), None
    if requested is None:
        chosen = [(name, binary_output) for name in outputs]
    else:
        chosen = [(out.name, out.binary) for out in requested]
    entries: list[dict[str, Any]] = []
    chunks: list[bytes] = []
    for name, binary in chosen:
        array = outputs[name]
        datatype = datatype_of(array)
        shape = list(array.shape)
        if binary:
            raw = _to_bytes(array, datatype)
            chunks.append(raw)
            entries.append(
                {
                    "name": name,
                    "datatype": datatype,
                    "shape": shape,
                    "parameters": {"binary_data_size": len(raw)},
                }
            )
        else:
            entries.append(
                {"name": name, "datatype": datatype, "shape": shape, "data": _to_json(array)}
            )
    doc = {"model_name": model_name, "model_version": model_version}
    if request_id is not None:
        doc["id"] = request_id
    doc["parameters"] = {}
    doc["outputs"] = entries
    header = orjson.dumps(doc, option=_DUMPS_OPTIONS)
    if not chunks:
        return header, None
    return b"".join([header, *chunks]), len(header)


def _to_json(array: Array) -> object:
    if array.dtype.kind in "OUS":
        return [_text(x) for x in array.reshape(-1).tolist()]
    return array.ravel()  # C-contiguous, as orjson needs: a copy only when the array is not


def _text(value: object) -> object:
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    return value if isinstance(value, str | int | float | bool) or value is None else str(value)


def tensor_from_bytes(
    name: str, datatype: str, shape: list[int], data: bytes, max_elements: int
) -> Array:
    """One tensor from its raw little-endian bytes (BYTES: 4-byte length + bytes each)."""
    name, datatype, shape, count = _tensor_header(
        {"name": name, "datatype": datatype, "shape": shape}, max_elements
    )
    return _from_binary(name, datatype, shape, count, memoryview(data))


def tensor_from_values(
    name: str, datatype: str, shape: list[int], values: list[Any], max_elements: int
) -> Array:
    """One tensor from a flat list of typed values (gRPC's ``InferTensorContents``)."""
    name, datatype, shape, count = _tensor_header(
        {"name": name, "datatype": datatype, "shape": shape}, max_elements
    )
    return _from_json(name, datatype, shape, count, values)


def tensor_to_bytes(array: Array, datatype: str) -> bytes:
    """An array as raw little-endian bytes of ``datatype`` (BYTES: length-prefixed items)."""
    return _to_bytes(array, datatype)


def _to_bytes(array: Array, datatype: str) -> bytes:
    if datatype != "BYTES":
        return np.ascontiguousarray(array, dtype=NUMPY_DTYPES[datatype]).tobytes()
    parts: list[bytes] = []
    for value in array.reshape(-1).tolist():
        raw = value if isinstance(value, bytes) else str(value).encode()
        parts.append(_LENGTH.pack(len(raw)))
        parts.append(raw)
    return b"".join(parts)


def to_json_value(array: Array) -> object:
    """An array as orjson can write it (nested, keeping the shape), for the plain predict route."""
    if array.dtype.kind in "OUS":
        return [_text(x) for x in array.tolist()] if array.ndim == 1 else _nested_text(array)
    return np.ascontiguousarray(array)


def _nested_text(array: Array) -> object:
    if array.ndim == 0:
        return _text(array.item())
    return [_nested_text(row) for row in array]


def dumps(value: object) -> bytes:
    """orjson with numpy support: the one JSON writer of the inference path."""
    return orjson.dumps(value, option=_DUMPS_OPTIONS)


def spec_json(spec: TensorSpec) -> dict[str, Any]:
    """A tensor spec as the metadata answer lists it."""
    return {"name": spec.name, "datatype": spec.datatype, "shape": list(spec.shape)}


@dataclass(slots=True)
class PredictRequest:
    """A parsed plain predict body: inputs by name, and record columns the model ignores."""

    inputs: dict[str, Array]
    ignored_columns: list[str]


def parse_predict_request(
    body: bytes, signature: Signature | None, max_tensor_elements: int
) -> dict[str, Array]:
    """Parse the plain predict body: rows ``{"inputs": [[...], ...]}`` or records ``[{...}]``."""
    return parse_predict(body, signature, max_tensor_elements).inputs


def parse_predict(
    body: bytes, signature: Signature | None, max_tensor_elements: int
) -> PredictRequest:
    """Parse the plain predict body, matching records to named columns, checking for NaN."""
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise ProtocolError("the request body is not valid JSON") from None
    rows = doc.get("inputs") if type(doc) is dict else None
    if type(rows) is not list or not rows:
        raise ProtocolError("the body needs 'inputs': a non-empty list of rows or of records")
    specs = signature.inputs if signature is not None else []
    ignored: list[str] = []
    if type(rows[0]) is dict:
        columns = list(rows[0])
        table: list[list[object]] = []
        for record in rows:
            if type(record) is not dict or len(record) != len(columns):
                raise ProtocolError("every record must be an object with the first one's keys")
            try:
                table.append([record[c] for c in columns])
            except KeyError as exc:
                raise ProtocolError(f"a record lacks the key {str(exc.args[0])[:64]!r}") from None
        if len(specs) > 1:
            inputs, ignored = _columns_as_inputs(table, columns, specs, max_tensor_elements)
            check_missing(inputs, signature)
            return PredictRequest(inputs, ignored)
        if specs and specs[0].columns:
            table, ignored = match_columns(columns, table, specs[0])
        rows = table
    spec = specs[0] if specs else None
    if len(specs) > 1:
        raise ProtocolError(
            "this model takes several inputs; send records keyed by "
            + ", ".join(repr(s.name) for s in specs)
        )
    datatype = spec.datatype if spec is not None else "FP64"
    array = _plain_array("inputs", rows, datatype, max_tensor_elements)
    inputs = {"input": array} if spec is None else {spec.name: conform(spec, array, datatype)}
    check_missing(inputs, signature)
    return PredictRequest(inputs, ignored)


def _columns_as_inputs(
    table: list[list[object]], columns: list[str], specs: list[TensorSpec], max_elements: int
) -> tuple[dict[str, Array], list[str]]:
    """One input per named column (a model with an input per feature); extras are ignored."""
    index = {column: i for i, column in enumerate(columns)}
    missing = [s.name for s in specs if s.name not in index]
    if missing:
        raise ProtocolError(
            f"the records lack the column{'s' if len(missing) > 1 else ''} "
            + ", ".join(repr(c) for c in missing)
            + "; the model takes "
            + ", ".join(repr(s.name) for s in specs)
        )
    result: dict[str, Array] = {}
    for spec in specs:
        at = index[spec.name]
        values = [row[at] for row in table]
        array = _plain_array(spec.name, values, spec.datatype, max_elements)
        if len(spec.shape) == 2 and array.ndim == 1:
            array = array.reshape(-1, 1)
        result[spec.name] = conform(spec, array, spec.datatype)
    return result, [column for column in columns if column not in result]


def _plain_array(name: str, data: list[Any], datatype: str, max_elements: int) -> Array:
    dtype = NUMPY_DTYPES[datatype]
    width = len(data[0]) if type(data[0]) is list else 1
    if len(data) * max(width, 1) > max_elements:
        raise ProtocolError(f"{name!r} has over the limit of {max_elements} elements")
    try:
        array = np.array(data, dtype=dtype)
    except (ValueError, TypeError, OverflowError):
        raise ProtocolError(
            f"{name!r} must be rows of equal length holding {datatype} values"
        ) from None
    if array.size > max_elements:
        raise ProtocolError(f"{name!r} has over the limit of {max_elements} elements")
    return array
