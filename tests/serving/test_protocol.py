"""The Open Inference Protocol codec on its own: binary tensors, casts and refusals."""

from __future__ import annotations

import struct

import numpy as np
import orjson
import pytest

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
