"""The run every supervised classical entry shares: split, fit, score, export, register.

An entry gives a ``fit`` function (which logs its own per-iteration metrics
through the ``log`` callback) and an ONNX converter; this module loads the
job's dataset, splits off a validation share (stratified for classification),
scores the fitted model on it with ``aimass.evaluation``, converts it, checks
the conversion against the model, and registers the ONNX file tagged with the
entry and its task. Runs inside the job's process.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from aimass.job_environment import job_threads

if TYPE_CHECKING:
    import numpy as np

    from aimass.runtime import JobContext

    Array = np.ndarray[Any, Any]

#: ``log(step, metrics)``: record metrics at one iteration (and print them to the job's log).
Log = Callable[[int, Mapping[str, float]], None]


@dataclass
class Split:
    """The training and validation rows of a job's dataset."""

    x_train: Array
    x_val: Array
    y_train: Array
    y_val: Array
    seed: int


def threads() -> int:
    """The CPU share the executor gave this job, at least 1."""
    return job_threads()


def default_model_name(ctx: JobContext, entry: str) -> str:
    """``<dataset>-<model>``, e.g. ``iris-logistic-regression``."""
    return f"{ctx.dataset}-{entry.rsplit('.', 1)[-1].replace('_', '-')}"


def logger(ctx: JobContext) -> Log:
    """A ``Log`` writing to the job's metrics and its log."""

    def log(step: int, metrics: Mapping[str, float]) -> None:
        ctx.log_metrics(metrics, step=step)
        shown = " ".join(f"{k}={v:.4f}" for k, v in metrics.items())
        print(f"step {step}: {shown}", flush=True)

    return log


def _features(ctx: JobContext, params: Mapping[str, Any], text: str | None) -> tuple[Array, Array]:
    import numpy as np

    from aimass.jobs.builtin._data import split_target

    frame = ctx.load_dataset()
    if params.get("cleaners"):
        from aimass.preprocessing import clean_table

        rows = len(frame)
        frame = clean_table(frame, params["cleaners"])
        print(f"cleaners {', '.join(params['cleaners'])}: {rows} rows -> {len(frame)}", flush=True)
    if text is None:
        x, y, _ = split_target(frame, params.get("target"))
        assert y is not None
        return x, y
    target = params.get("target") or "label"
    for column in (text, target):
        if column not in frame.columns:
            raise ValueError(
                f"the dataset has no column {column!r} (columns: {list(frame.columns)})"
            )
    texts = frame[text].fillna("").astype(str).to_numpy(dtype=object)
    return texts, np.asarray(frame[target].to_numpy())


def run_supervised(
    params: Mapping[str, Any],
    *,
    entry: str,
    task: str,
    fit: Callable[[Split, Log], Any],
    export: Callable[[Any, int], Any],
    text: str | None = None,
) -> dict[str, Any]:
    """Train ``entry`` on the job's dataset and register it; the job's outputs.

    ``task`` is ``classification`` or ``regression``; ``export(model, n_features)``
    returns the ONNX ModelProto; ``text`` names the raw-text column of a text model.
    """
    from sklearn.model_selection import train_test_split

    from aimass import runtime
    from aimass.evaluation import classification_report, regression_report
    from aimass.zoo._onnx import check_onnx

    ctx = runtime.context()
    x, y = _features(ctx, params, text)
    seed = int(params["seed"])
    x_train, x_val, y_train, y_val = train_test_split(
        x,
        y,
        test_size=params["test_size"],
        random_state=seed,
        stratify=y if task == "classification" else None,
    )
    ctx.log_params(dict(params))
    began = time.monotonic()
    model = fit(Split(x_train, x_val, y_train, y_val, seed), logger(ctx))
    seconds = time.monotonic() - began
    if task == "classification":
        labels = list(model.classes_)
        report = classification_report(
            y_val, model.predict(x_val), model.predict_proba(x_val), labels
        )
    else:
        report = regression_report(y_val, model.predict(x_val))
    metrics = report.metrics
    print("validation: " + " ".join(f"{k}={v:.4f}" for k, v in metrics.items()), flush=True)
    n_features = 1 if text is not None else int(x.shape[1])
    onnx_model = export(model, n_features)
    sample = x_val[:32].reshape(-1, 1) if text is not None else x_val[:32]
    check_onnx(onnx_model, model, sample)
    name = params.get("model_name") or default_model_name(ctx, entry)
    version = ctx.register_model(
        name,
        onnx_model,
        metrics=metrics,
        tags={"task": task, "entry": entry}
        | ({"cleaners": ",".join(params["cleaners"])} if params.get("cleaners") else {}),
        description=f"{entry} trained on {ctx.dataset} by job {ctx.job_id}",
    )
    return {
        **metrics,
        "train_seconds": round(seconds, 3),
        "validation_rows": len(y_val),
        "model": version.model,
        "model_version": version.version,
    }
