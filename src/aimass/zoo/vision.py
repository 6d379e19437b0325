"""``vision.cnn``: a small convolutional network on square grey images stored as pixel columns.

The default data is scikit-learn's digits: 8x8 images as 64 columns of 0..16
and a ``target`` column. The served ONNX model takes the flat pixel rows,
float32 ``[-1, side*side]`` named ``input``, on the data's own scale (the model
divides by the training data's largest pixel value and reshapes), and answers
``label`` and ``probabilities`` — so the ``evaluate`` job scores it on a table of the same
columns as it is.
"""

from __future__ import annotations

import math
from typing import Annotated, Any

from pydantic import Field

from aimass.plugins.columns import Columns
from aimass.plugins.entries import Entry
from aimass.zoo._classify import ClassifierParams
from aimass.zoo._extras import TORCH


class CnnParams(ClassifierParams):
    """``vision.cnn``."""

    target: str | None = Field(default=None, description="label column (default: the last)")
    channels: list[Annotated[int, Field(ge=1, le=512)]] = Field(
        default=[16, 32], min_length=1, max_length=2, description="filters of each conv block"
    )
    hidden_size: int = Field(default=64, ge=1, le=4096)
    dropout: float = Field(default=0.2, ge=0, lt=1)
    epochs: int = Field(default=15, ge=1, le=10_000)
    learning_rate: float = Field(default=2e-3, gt=0, le=10)
    batch_size: int = Field(default=64, ge=1, le=65_536)


#: A handwritten zero from digits (8x8, values 0..16): the example request.
_ZERO = [
    0, 0, 5, 13, 9, 1, 0, 0, 0, 0, 13, 15, 10, 15, 5, 0, 0, 3, 15, 2, 0, 11, 8, 0,
    0, 4, 12, 0, 0, 8, 8, 0, 0, 5, 8, 0, 0, 9, 8, 0, 0, 4, 11, 0, 1, 12, 7, 0,
    0, 2, 14, 5, 10, 12, 0, 0, 0, 0, 6, 13, 10, 0, 0, 0,
]  # fmt: skip

ENTRIES = [
    Entry(
        name="vision.cnn",
        kinds=frozenset({"train"}),
        target="aimass.zoo.vision:train",
        description=(
            "A small PyTorch CNN (conv blocks, then a dense layer) on square grey images given "
            "as pixel columns, trained with AdamW epoch by epoch, resumable; exported to ONNX."
        ),
        params=CnnParams,
        needs_dataset=True,
        task="classification",
        family="vision",
        default_dataset="digits",
        exports=("onnx",),
        columns=Columns(),
        needs=TORCH,
        signature={
            "inputs": [{"name": "input", "datatype": "FP32", "shape": [-1, 64]}],
            "outputs": [
                {"name": "label", "datatype": "INT64", "shape": [-1]},
                {"name": "probabilities", "datatype": "FP32", "shape": [-1, 10]},
            ],
        },
        example_request={
            "inputs": [{"name": "input", "datatype": "FP32", "shape": [1, 64], "data": _ZERO}]
        },
    )
]


def _network(torch: Any, side: int, params: CnnParams, n_classes: int) -> list[Any]:
    nn = torch.nn
    layers: list[Any] = []
    channels_in = 1
    for channels in params.channels:
        if side < 2:
            raise ValueError(
                f"{len(params.channels)} pooling blocks are too many for these images; use fewer"
            )
        layers += [
            nn.Conv2d(channels_in, channels, kernel_size=3, padding=1),
            nn.BatchNorm2d(channels),
            nn.ReLU(),
            nn.MaxPool2d(2),
        ]
        channels_in, side = channels, side // 2
    return [
        *layers,
        nn.Flatten(),
        nn.Linear(channels_in * side * side, params.hidden_size),
        nn.ReLU(),
        nn.Dropout(params.dropout),
        nn.Linear(params.hidden_size, n_classes),
    ]


def train(raw: dict[str, Any]) -> dict[str, Any]:
    """Train, score and checkpoint each epoch; export to ONNX and register the version."""
    from aimass import runtime
    from aimass.jobs.builtin._data import split_target
    from aimass.zoo._classify import affine, split_table, train_table_classifier
    from aimass.zoo._torch import record_pid, setup

    params = CnnParams.model_validate(raw)
    ctx = runtime.context()
    record_pid(ctx)
    torch, device = setup(params.seed)
    x, y, _ = split_target(ctx.load_dataset(), params.target)
    assert y is not None
    side = math.isqrt(x.shape[1])
    if side * side != x.shape[1]:
        raise ValueError(
            f"the dataset has {x.shape[1]} feature columns; a square image needs a square number"
        )
    classes, data = split_table(x, y, params.test_size, params.seed)
    peak = float(max(data.x_train.max(), 1e-6))
    body = torch.nn.Sequential(
        affine(torch, 0.0, peak),
        torch.nn.Unflatten(1, (1, side, side)),
        *_network(torch, side, params, len(classes)),
    )
    return train_table_classifier(
        ctx,
        params,
        torch,
        device,
        body,
        data,
        classes,
        entry="vision.cnn",
        suffix="cnn",
        description=f"vision.cnn on {ctx.dataset}: {side}x{side} images, "
        f"channels {params.channels}",
    )
