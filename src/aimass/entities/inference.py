"""The inference path's wire: the plain predict route and the Open Inference Protocol (``/v2``).

The inference path writes its answers with orjson for speed; these models say
what it writes, for the OpenAPI document, the SDK and the contract test.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, JsonValue

#: The tensor datatypes of the Open Inference Protocol.
Datatype = Literal[
    "BOOL",
    "UINT8",
    "UINT16",
    "UINT32",
    "UINT64",
    "INT8",
    "INT16",
    "INT32",
    "INT64",
    "FP16",
    "FP32",
    "FP64",
    "BYTES",
]


class PredictRequest(BaseModel):
    """``POST /api/v1/deployments/{name}/predict``: rows as lists, or records keyed by column."""

    inputs: list[list[JsonValue]] | list[dict[str, JsonValue]] = Field(
        min_length=1,
        description='rows (`[[5.1, 3.5, 1.4, 0.2]]`) or records (`[{"sepal_length": 5.1}]`)',
        examples=[[[5.1, 3.5, 1.4, 0.2]]],
    )


class PredictResult(BaseModel):
    """One predict answer: one prediction (and, for classifiers, probabilities) per row."""

    deployment: str
    model: str
    version: int
    predictions: list[JsonValue]
    probabilities: list[JsonValue] | None = None
    ignored_columns: list[str] | None = None


class ServerMetadata(BaseModel):
    """``GET /v2``: the server's name, version and protocol extensions."""

    name: str
    version: str
    extensions: list[str]


class TensorMetadata(BaseModel):
    """One input or output of a model: its name, datatype and shape (-1: any size)."""

    name: str
    datatype: Datatype
    shape: list[int]


class ModelMetadata(BaseModel):
    """``GET /v2/models/{name}[/versions/{v}]``: the deployment's versions and tensors."""

    name: str
    versions: list[str]
    platform: str
    inputs: list[TensorMetadata]
    outputs: list[TensorMetadata]


class RequestedOutput(BaseModel):
    """An output the caller wants, as JSON data or (``binary_data``) appended bytes."""

    name: str
    parameters: dict[str, JsonValue] | None = None


class InferInputTensor(BaseModel):
    """One input tensor of an infer request: ``data`` in row-major order."""

    name: str
    shape: list[int]
    datatype: Datatype
    parameters: dict[str, JsonValue] | None = None
    data: list[JsonValue] | None = None


class InferRequest(BaseModel):
    """``POST /v2/models/{name}[/versions/{v}]/infer`` in JSON."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "inputs": [
                        {
                            "name": "input",
                            "shape": [1, 4],
                            "datatype": "FP32",
                            "data": [5.1, 3.5, 1.4, 0.2],
                        }
                    ]
                }
            ]
        }
    )

    id: str | None = None
    parameters: dict[str, JsonValue] | None = None
    inputs: list[InferInputTensor] = Field(min_length=1)
    outputs: list[RequestedOutput] | None = None


class InferOutputTensor(BaseModel):
    """One output tensor of an infer answer (``data``, or ``binary_data_size`` in parameters)."""

    name: str
    shape: list[int]
    datatype: Datatype
    parameters: dict[str, JsonValue] | None = None
    data: list[JsonValue] | None = None


class InferResponse(BaseModel):
    """The answer to an infer request: which version answered, and its outputs."""

    model_name: str
    model_version: str
    id: str | None = None
    parameters: dict[str, JsonValue] | None = None
    outputs: list[InferOutputTensor]


class InferenceError(BaseModel):
    """A ``/v2`` error, as KServe and Triton write it: ``{"error": "message"}``."""

    error: str
