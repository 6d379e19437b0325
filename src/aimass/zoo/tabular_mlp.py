"""``tabular.mlp``: a multilayer perceptron on a table's numeric columns, exported to ONNX.

The standardization (the training split's mean and scale) is folded into the
network as buffers, so the served model takes the raw feature rows, float32
``[-1, n_features]`` named ``input``, and answers ``label`` (the class as the
data writes it: an integer, a float or a string) and ``probabilities`` (one
column per class, in sorted label order).
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import Field

from aimass.plugins.columns import Columns
from aimass.plugins.entries import Entry
from aimass.zoo._classify import ClassifierParams
from aimass.zoo._extras import TORCH


class TabularMlpParams(ClassifierParams):
    """``tabular.mlp``."""

    target: str | None = Field(default=None, description="label column (default: the last)")
    hidden_sizes: list[Annotated[int, Field(ge=1, le=4096)]] = Field(
        default=[64, 32], min_length=1, max_length=8, description="units of each hidden layer"
    )
    dropout: float = Field(default=0.1, ge=0, lt=1)
    epochs: int = Field(default=30, ge=1, le=10_000)
    weight_decay: float = Field(default=1e-4, ge=0, le=1, description="L2 penalty (AdamW)")


#: The first row of breast_cancer (30 features): the example request of the default data.
_EXAMPLE_ROW = [
    17.99, 10.38, 122.8, 1001.0, 0.1184, 0.2776, 0.3001, 0.1471, 0.2419, 0.07871,
    1.095, 0.9053, 8.589, 153.4, 0.006399, 0.04904, 0.05373, 0.01587, 0.03003, 0.006193,
    25.38, 17.33, 184.6, 2019.0, 0.1622, 0.6656, 0.7119, 0.2654, 0.4601, 0.1189,
]  # fmt: skip

ENTRIES = [
    Entry(
        name="tabular.mlp",
        kinds=frozenset({"train"}),
        target="aimass.zoo.tabular_mlp:train",
        description=(
            "A PyTorch MLP classifier on numeric columns (standardization built in), trained "
            "with AdamW epoch by epoch, resumable; exported to ONNX with label and probabilities."
        ),
        params=TabularMlpParams,
        needs_dataset=True,
        task="classification",
        family="tabular",
        default_dataset="breast_cancer",
        exports=("onnx",),
        columns=Columns(),
        needs=TORCH,
        signature={
            "inputs": [{"name": "input", "datatype": "FP32", "shape": [-1, -1]}],
            "outputs": [
                {"name": "label", "datatype": "INT64", "shape": [-1]},
                {"name": "probabilities", "datatype": "FP32", "shape": [-1, -1]},
            ],
        },
        example_request={
            "inputs": [
                {"name": "input", "datatype": "FP32", "shape": [1, 30], "data": _EXAMPLE_ROW}
            ]
        },
    )
]


def _mlp(torch: Any, n_in: int, hidden: list[int], n_out: int, dropout: float) -> list[Any]:
    layers: list[Any] = []
    for units in hidden:
        layers += [torch.nn.Linear(n_in, units), torch.nn.ReLU(), torch.nn.Dropout(dropout)]
        n_in = units
    layers.append(torch.nn.Linear(n_in, n_out))
    return layers


def train(raw: dict[str, Any]) -> dict[str, Any]:
    """Train, score and checkpoint each epoch; export to ONNX and register the version."""
    import numpy as np

    from aimass import runtime
    from aimass.jobs.builtin._data import split_target
    from aimass.zoo._classify import affine, split_table, train_table_classifier
    from aimass.zoo._torch import record_pid, setup

    params = TabularMlpParams.model_validate(raw)
    ctx = runtime.context()
    record_pid(ctx)
    torch, device = setup(params.seed)
    x, y, _ = split_target(ctx.load_dataset(), params.target)
    assert y is not None
    classes, data = split_table(x, y, params.test_size, params.seed)
    mean, scale = data.x_train.mean(axis=0), data.x_train.std(axis=0)
    scale = np.where(scale > 1e-12, scale, 1.0)
    body = torch.nn.Sequential(
        affine(torch, mean, scale),
        *_mlp(torch, x.shape[1], params.hidden_sizes, len(classes), params.dropout),
    )
    return train_table_classifier(
        ctx,
        params,
        torch,
        device,
        body,
        data,
        classes,
        entry="tabular.mlp",
        suffix="mlp",
        description=f"tabular.mlp on {ctx.dataset}: hidden layers {params.hidden_sizes}",
    )
