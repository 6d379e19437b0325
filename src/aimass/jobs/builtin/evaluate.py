"""``evaluate``: a model version on the job's dataset; the report goes onto the version."""

from __future__ import annotations

from typing import Any


def run(params: dict[str, Any]) -> dict[str, Any]:
    """Load the version, predict the dataset, compute the task's metrics, report them."""
    from aimass import runtime
    from aimass.evaluation import evaluate_loaded, infer_task
    from aimass.jobs.builtin._data import load_version, split_target

    ctx = runtime.context()
    frame = ctx.load_dataset()
    _, y, target = split_target(frame, params.get("target"))
    assert y is not None
    loaded, version = load_version(ctx, params["model"], params["version"])
    task = params.get("task") or infer_task(y)
    print(f"evaluating {version.model} v{version.version} on {ctx.dataset} ({task})", flush=True)
    report = evaluate_loaded(loaded, frame.drop(columns=[target]), y, task=task)
    for name, value in sorted(report.metrics.items()):
        print(f"  {name}: {value:.4f}", flush=True)
    ctx.log_metrics(report.metrics)
    body = {
        "model": version.model,
        "version": version.version,
        "task": report.task,
        "metrics": report.metrics,
        "details": report.details,
        "n_rows": report.n_rows,
    }
    ctx._write("POST", "evaluations", json=body)
    return {"model": version.model, "model_version": version.version, "metrics": report.metrics}
