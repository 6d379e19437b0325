"""The deep classifiers' shared path: fit a logits network epoch by epoch, then export and register.

A family builds its network as ``body`` (inputs to logits, preprocessing
included) and wraps it with :func:`probabilities_module`; training uses the
logits (cross-entropy), serving the probabilities. The registered ONNX model
answers ``label`` and ``probabilities`` (see ``aimass.zoo._torch_export``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pydantic import Field

from aimass.zoo._torch import TorchParams

if TYPE_CHECKING:
    from collections.abc import Sequence

    from aimass.runtime import JobContext


class ClassifierParams(TorchParams):
    """Params of the deep classifiers: the torch ones and the validation share."""

    test_size: float = Field(
        default=0.25, gt=0, lt=1, description="share of the rows held out for validation"
    )


class TextClassifierParams(ClassifierParams):
    """Params of the deep text classifiers: which column holds the texts, which the labels."""

    text_column: str = Field(default="text", min_length=1, description="the column of texts")
    target: str | None = Field(default=None, description="label column (default: the last)")


@dataclass
class TextRows:
    """A text classification job's rows: the texts, their classes and the validation split."""

    texts: list[str]
    #: The distinct classes, and each row's class number.
    classes: Any
    index: Any
    train_rows: Any
    val_rows: Any


def text_rows(
    ctx: JobContext,
    params: TextClassifierParams,
    max_rows: int | None = None,
    labels_as_text: bool = False,
) -> TextRows:
    """The job's dataset as texts and classes, checked, (sampled to ``max_rows``) and split."""
    from aimass.zoo._torch import classifier_labels

    frame = ctx.load_dataset()
    target = params.target or str(frame.columns[-1])
    for column in (params.text_column, target):
        if column not in frame.columns:
            raise ValueError(
                f"the dataset has no column {column!r} (columns: {list(frame.columns)})"
            )
    if max_rows is not None and len(frame) > max_rows:
        frame = frame.sample(n=max_rows, random_state=params.seed)
    texts = [str(text) for text in frame[params.text_column].fillna("").astype(str)]
    labels = frame[target].astype(str) if labels_as_text else frame[target]
    classes, index = classifier_labels(labels.to_numpy())
    train_rows, val_rows = split_rows(index, params.test_size, params.seed)
    return TextRows(texts, classes, index, train_rows, val_rows)


@dataclass
class Split:
    """Training and validation inputs and class indices: numpy arrays, or tensors on the device."""

    x_train: Any
    y_train: Any
    x_val: Any
    y_val: Any


def split_rows(index: Any, test_size: float, seed: int) -> tuple[Any, Any]:
    """Row numbers for training and validation: stratified by class when every class can be."""
    import numpy as np
    from sklearn.model_selection import train_test_split

    rows = np.arange(len(index))
    stratify = index if np.bincount(index).min() >= 2 else None
    train, val = train_test_split(rows, test_size=test_size, random_state=seed, stratify=stratify)
    return train, val


def split_table(x: Any, y: Any, test_size: float, seed: int) -> tuple[Any, Split]:
    """The sorted classes of ``y``, and the table's rows split for training and validation.

    The split holds numpy arrays: the features ``x`` and each row's class index.
    """
    from aimass.zoo._torch import classifier_labels

    classes, index = classifier_labels(y)
    train_rows, val_rows = split_rows(index, test_size, seed)
    return classes, Split(x[train_rows], index[train_rows], x[val_rows], index[val_rows])


def affine(torch: Any, shift: Any, scale: Any) -> Any:
    """A module computing ``(x - shift) / scale`` with both held as buffers (exported with it)."""

    class Affine(torch.nn.Module):  # type: ignore[misc]
        def __init__(self) -> None:
            super().__init__()
            self.register_buffer("shift", torch.as_tensor(shift, dtype=torch.float32))
            self.register_buffer("scale", torch.as_tensor(scale, dtype=torch.float32))

        def forward(self, x: Any) -> Any:
            return (x - self.shift) / self.scale

    return Affine()


def probabilities_module(torch: Any, body: Any) -> Any:
    """Wrap ``body`` (inputs to logits): ``logits`` trains, ``forward`` gives probabilities."""

    class Classifier(torch.nn.Module):  # type: ignore[misc]
        def __init__(self) -> None:
            super().__init__()
            self.body = body

        def logits(self, x: Any) -> Any:
            return self.body(x)

        def forward(self, x: Any) -> Any:
            return torch.softmax(self.body(x), dim=-1)

    return Classifier()


def fit_classifier(
    ctx: JobContext, params: TorchParams, model: Any, split: Split
) -> tuple[int, float]:
    """Train ``model`` with AdamW on cross-entropy, scoring the validation split each epoch.

    Returns (the epoch it resumed after, the seconds this attempt trained).
    """
    import torch

    from aimass.zoo._torch import batches, run_epochs

    optimizer = torch.optim.AdamW(
        model.parameters(), lr=params.learning_rate, weight_decay=params.weight_decay
    )
    loss_fn = torch.nn.CrossEntropyLoss()
    rows = len(split.x_train)

    def train_epoch(epoch: int) -> dict[str, float]:
        total = 0.0
        for index in batches(torch, rows, params.batch_size):
            optimizer.zero_grad()
            loss = loss_fn(model.logits(split.x_train[index]), split.y_train[index])
            loss.backward()
            optimizer.step()
            total += loss.item() * len(index)
        return {"train_loss": total / rows}

    def score() -> dict[str, float]:
        logits = model.logits(split.x_val)
        accuracy = float((logits.argmax(dim=-1) == split.y_val).float().mean())
        return {"accuracy": accuracy, "loss": float(loss_fn(logits, split.y_val))}

    ctx.log_params(params.model_dump(mode="json"))
    return run_epochs(ctx, params, model, optimizer, train_epoch, score)


def register_classifier(
    ctx: JobContext,
    params: TorchParams,
    model: Any,
    split: Split,
    classes: Any,
    *,
    entry: str,
    suffix: str,
    input_name: str,
    input_axes: Sequence[int],
    description: str,
    vocabulary: Sequence[str] | None = None,
    served_inputs: Any = None,
) -> dict[str, Any]:
    """Score the validation split, export to ONNX, check it, register the version; the metrics.

    The exported graph is run by onnxruntime on the validation rows as a client
    sends them (``served_inputs``, default the validation tensor: raw strings
    for a text model) and must give the probabilities torch gave, or the job fails.
    """
    import torch

    from aimass.evaluation import classification_report
    from aimass.zoo._torch_export import check_export, export_classifier

    model.eval()
    with torch.no_grad():
        probabilities = model(split.x_val).cpu().numpy()
    y_val = classes[split.y_val.cpu().numpy()]
    predicted = classes[probabilities.argmax(axis=1)]
    report = classification_report(y_val, predicted, probabilities, classes.tolist())
    metrics = dict(report.metrics)
    path = export_classifier(
        model,
        [split.x_val[:2].cpu()],
        ctx.scratch / "model.onnx",
        input_name,
        input_axes,
        classes,
        vocabulary,
    )
    feed = split.x_val.cpu().numpy() if served_inputs is None else served_inputs
    check_export(path, feed, classes[probabilities.argmax(axis=1)], probabilities)
    version = ctx.register_model(
        params.model_name or f"{ctx.dataset}-{suffix}",
        path,
        metrics=metrics,
        tags={"task": "classification", "entry": entry},
        description=description,
    )
    return {**metrics, "model": version.model, "model_version": version.version}


def train_table_classifier(
    ctx: JobContext,
    params: TorchParams,
    torch: Any,
    device: Any,
    body: Any,
    data: Split,
    classes: Any,
    *,
    entry: str,
    suffix: str,
    description: str,
) -> dict[str, Any]:
    """Fit ``body`` on the numpy ``data``, export and register it; the job's outputs.

    For networks on feature rows: the served model takes float32 rows named ``input``.
    """
    model = probabilities_module(torch, body).to(device)
    arrays = (data.x_train, data.y_train, data.x_val, data.y_val)
    split = Split(*(torch.from_numpy(a).to(device) for a in arrays))
    resumed_from, seconds = fit_classifier(ctx, params, model, split)
    outputs = register_classifier(
        ctx,
        params,
        model,
        split,
        classes,
        entry=entry,
        suffix=suffix,
        input_name="input",
        input_axes=[0],
        description=description,
    )
    return {
        **outputs,
        "epochs": params.epochs,
        "resumed_from": resumed_from,
        "train_seconds": seconds,
    }
