"""Input/output signatures in the Open Inference Protocol's vocabulary."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

#: Open Inference Protocol datatypes, and the numpy dtype names they map to.
DATATYPES: dict[str, str] = {
    "BOOL": "bool",
    "UINT8": "uint8",
    "UINT16": "uint16",
    "UINT32": "uint32",
    "UINT64": "uint64",
    "INT8": "int8",
    "INT16": "int16",
    "INT32": "int32",
    "INT64": "int64",
    "FP16": "float16",
    "FP32": "float32",
    "FP64": "float64",
    "BYTES": "object",
}
NUMPY_TO_DATATYPE: dict[str, str] = {v: k for k, v in DATATYPES.items()}


class TensorSpec(BaseModel):
    """One named tensor: its OIP datatype and shape (-1 for a variable dimension)."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=256)
    datatype: str
    shape: list[int]
    #: Names of the last dimension's columns when known (a model fitted on a table);
    #: left out of the JSON when unknown, so older signatures keep theirs.
    columns: list[str] | None = Field(default=None, exclude_if=lambda v: v is None)

    def model_post_init(self, _context: object) -> None:
        if self.datatype not in DATATYPES:
            raise ValueError(
                f"datatype {self.datatype!r} is not an Open Inference Protocol datatype; "
                f"use one of {', '.join(DATATYPES)}"
            )
        if any(d < -1 for d in self.shape):
            raise ValueError("shape dimensions must be -1 (variable) or >= 0")
        if self.columns is not None and (
            len(self.shape) != 2 or self.shape[1] not in (-1, len(self.columns))
        ):
            raise ValueError("columns name the columns of a 2-D input; one name per column")


class Signature(BaseModel):
    """What a model takes and returns."""

    model_config = ConfigDict(extra="forbid")

    inputs: list[TensorSpec]
    outputs: list[TensorSpec] = Field(default_factory=list)
    #: Whether the model accepts missing values (NaN) in its float inputs (left out when False).
    allows_missing: bool = Field(default=False, exclude_if=lambda v: v is False)
