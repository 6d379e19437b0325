"""The Open Inference Protocol codec on its own: binary tensors, casts and refusals."""

from __future__ import annotations

import struct

import numpy as np
import orjson
import pytest

from aimass.errors import InvalidInput
from aimass.flavors.signature import Signature, TensorSpec
from aimass.serving.protocol import (
    ProtocolError,
    RequestedOutput,
    encode_infer_response,
    parse_infer_request,
    parse_predict_request,
)

INT_MODEL = Signature(inputs=[TensorSpec(name="ids", datatype="INT64", shape=[-1, 2])])


def _binary(inputs: list[dict[str, object]], *chunks: bytes) -> tuple[bytes, int]:
    header = orjson.dumps({"inputs": inputs})
    return header + b"".join(chunks), len(header)


def test_binary_numeric_and_bytes_tensors_parse() -> None:
    numbers = np.arange(6, dtype="<f4").reshape(2, 3)
    words = [b"a", b"", b"hello"]
    packed = b"".join(struct.pack("<I", len(w)) + w for w in words)
    body, length = _binary(
        [
            {"name": "n", "shape": [2, 3], "datatype": "FP32",
             "parameters": {"binary_data_size": numbers.nbytes}},
            {"name": "w", "shape": [3], "datatype": "BYTES",
             "parameters": {"binary_data_size": len(packed)}},
        ],
        numbers.tobytes(),
        packed,
    )  # fmt: skip
    request = parse_infer_request(body, length, None, 100)
    np.testing.assert_array_equal(request.inputs["n"], numbers)
    assert request.inputs["w"].tolist() == words


def test_leftover_or_missing_binary_bytes_are_refused() -> None:
    spec = {"name": "n", "shape": [2], "datatype": "INT32", "parameters": {"binary_data_size": 8}}
    body, length = _binary([spec], b"\0" * 12)
    with pytest.raises(ProtocolError, match="4 bytes of binary data follow"):
        parse_infer_request(body, length, None, 100)
    body, length = _binary([spec], b"\0" * 4)
    with pytest.raises(ProtocolError, match="only 4 remain"):
        parse_infer_request(body, length, None, 100)
    with pytest.raises(ProtocolError, match="Inference-Header-Content-Length is"):
        parse_infer_request(body, len(body) + 1, None, 100)


def test_cut_bytes_elements_are_refused() -> None:
    packed = struct.pack("<I", 10) + b"abc"
    spec = {"name": "w", "shape": [1], "datatype": "BYTES",
            "parameters": {"binary_data_size": len(packed)}}  # fmt: skip
    body, length = _binary([spec], packed)
    with pytest.raises(ProtocolError, match="cut short"):
        parse_infer_request(body, length, None, 100)


def test_float_data_is_not_cast_to_an_integer_input() -> None:
    body = orjson.dumps(
        {"inputs": [{"name": "ids", "shape": [1, 2], "datatype": "FP32", "data": [1.5, 2]}]}
    )
    with pytest.raises(ProtocolError, match="input 'ids' has datatype FP32; the model takes INT64"):
        parse_infer_request(body, None, INT_MODEL, 100)
    body = orjson.dumps(
        {"inputs": [{"name": "ids", "shape": [1, 2], "datatype": "INT32", "data": [[1, 2]]}]}
    )
    assert parse_infer_request(body, None, INT_MODEL, 100).inputs["ids"].dtype == np.int64


def test_strings_in_numeric_data_and_ragged_data_are_refused() -> None:
    for data in (["1", "2"], [[1], [2, 3]]):
        body = orjson.dumps(
            {"inputs": [{"name": "ids", "shape": [1, 2], "datatype": "INT64", "data": data}]}
        )
        with pytest.raises(ProtocolError, match="input 'ids'"):
            parse_infer_request(body, None, INT_MODEL, 100)


def test_unknown_inputs_and_bad_ids_are_refused() -> None:
    body = orjson.dumps(
        {
            "inputs": [
                {"name": "ids", "shape": [1, 2], "datatype": "INT64", "data": [1, 2]},
                {"name": "extra", "shape": [1], "datatype": "INT64", "data": [1]},
            ]
        }
    )
    with pytest.raises(ProtocolError, match="unknown input 'extra'"):
        parse_infer_request(body, None, INT_MODEL, 100)
    body = orjson.dumps(
        {"id": 5, "inputs": [{"name": "ids", "shape": [1, 2], "datatype": "INT64", "data": [1, 2]}]}
    )
    with pytest.raises(ProtocolError, match="'id' must be a string"):
        parse_infer_request(body, None, INT_MODEL, 100)


def test_responses_mix_json_and_binary_outputs() -> None:
    outputs = {"a": np.array([1, 2], dtype=np.int64), "b": np.array([[0.5, 0.25]])}
    requested = [RequestedOutput("a", False), RequestedOutput("b", True)]
    body, length = encode_infer_response("m", "3", "x", outputs, requested, False)
    assert length is not None
    header = orjson.loads(body[:length])
    assert header["id"] == "x" and header["model_version"] == "3"
    assert header["outputs"][0] == {"name": "a", "datatype": "INT64", "shape": [2], "data": [1, 2]}
    assert header["outputs"][1]["parameters"] == {"binary_data_size": 16}
    np.testing.assert_array_equal(np.frombuffer(body[length:], "<f8"), [0.5, 0.25])
    body, length = encode_infer_response("m", "3", None, {"s": np.array(["x", "y"])}, None, False)
    assert length is None
    assert orjson.loads(body)["outputs"][0]["data"] == ["x", "y"]


def test_predict_records_follow_the_first_records_key_order() -> None:
    signature = Signature(inputs=[TensorSpec(name="input", datatype="FP64", shape=[-1, 2])])
    body = orjson.dumps({"inputs": [{"b": 1, "a": 2}, {"a": 4, "b": 3}]})
    inputs = parse_predict_request(body, signature, 100)
    np.testing.assert_array_equal(inputs["input"], [[1.0, 2.0], [3.0, 4.0]])
    with pytest.raises(ProtocolError, match="first one's keys"):
        parse_predict_request(orjson.dumps({"inputs": [{"a": 1}, {"a": 1, "b": 2}]}), None, 100)
    with pytest.raises(ProtocolError, match="over the limit"):
        parse_predict_request(orjson.dumps({"inputs": [[0.0] * 60] * 2}), None, 100)


FLOAT_MODEL = Signature(inputs=[TensorSpec(name="X", datatype="FP32", shape=[-1, 3])])


def _parse_both(tensor: dict[str, object], request_id: str | None = None) -> tuple[object, object]:
    """The request as sent, and the same with an empty ``parameters`` on its input (which
    the common-request shortcut leaves to the general parse): a result or an error each."""
    results: list[object] = []
    for extra in ({}, {"parameters": {}}):
        doc: dict[str, object] = {"inputs": [{**tensor, **extra}]}
        if request_id is not None:
            doc["id"] = request_id
        try:
            request = parse_infer_request(orjson.dumps(doc), None, FLOAT_MODEL, 1000)
        except InvalidInput as exc:
            results.append((type(exc).__name__, exc.message))
        else:
            array = request.inputs["X"]
            results.append(
                (request.id, request.outputs, request.binary_output, list(request.inputs),
                 array.dtype, array.shape, array.tolist())
            )  # fmt: skip
    return results[0], results[1]


@pytest.mark.parametrize(
    ("shape", "data"),
    [
        ([1, 3], [1.5, 2.0, -3.25]),
        ([2, 3], [1, 2, 3, 4, 5, 6]),  # integers into FP32
        ([1, 3], [1.0, None, 3.0]),  # a missing value: the same 400
        ([1, 3], [1.0, "nan", 3.0]),
        ([1, 3], [True, 2.0, 3.0]),
        ([1, 3], [1.0, [2.0], 3.0]),
        ([1, 3], [1.0, "x", 3.0]),
        ([1, 2], [1.0, 2.0]),  # the model takes 3 columns
        ([2, 3], [1.0, 2.0, 3.0]),  # fewer values than the shape says
        ([1, -3], [1.0, 2.0, 3.0]),
        ([3], [1.0, 2.0, 3.0]),
        ([1, 3], []),
        ([1, 3], [[1.0, 2.0, 3.0]]),  # nested data
        ([1, 3000], [1.0] * 3000),  # over the element limit
    ],
)
def test_common_request_parses_as_the_general_way(shape: list[int], data: list[object]) -> None:
    tensor = {"name": "X", "shape": shape, "datatype": "FP32", "data": data}
    fast, general = _parse_both(tensor)
    assert fast == general
    fast, general = _parse_both(tensor, request_id="r-1")
    assert fast == general


@pytest.mark.parametrize(
    "tensor",
    [
        {"name": "Y", "shape": [1, 3], "datatype": "FP32", "data": [1.0, 2.0, 3.0]},
        {"name": "X", "shape": [1, 3], "datatype": "FP64", "data": [1.0, 2.0, 3.0]},
        {"name": "X", "shape": [1, 3], "datatype": "BYTES", "data": ["a", "b", "c"]},
    ],
)
def test_other_names_and_datatypes_parse_as_the_general_way(tensor: dict[str, object]) -> None:
    fast, general = _parse_both(tensor)
    assert fast == general


@pytest.mark.parametrize("request_id", [None, "r-7"])
def test_all_outputs_as_json_encode_as_when_each_is_asked_for(request_id: str | None) -> None:
    outputs = {
        "label": np.array([1, 0], dtype=np.int64),
        "proba": np.arange(6, dtype=np.float32).reshape(3, 2).T,  # not C-contiguous
        "words": np.array([b"a", "b"], dtype=object),
    }
    asked = [RequestedOutput(name, False) for name in outputs]
    everything = encode_infer_response("m", "2", request_id, outputs, None, False)
    assert everything == encode_infer_response("m", "2", request_id, outputs, asked, False)
    doc = orjson.loads(everything[0])
    assert doc["outputs"][1] == {
        "name": "proba", "datatype": "FP32", "shape": [2, 3], "data": [0, 2, 4, 1, 3, 5]
    }  # fmt: skip
