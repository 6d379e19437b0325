"""``evaluate``: a model version on the job's dataset; the report goes onto the version.

The evaluation fits the version's task. A version a model-library entry
registered carries the tags ``entry`` and ``task``: when that entry names an
``evaluate`` target (node classification, episode return, ranking, ...), that
function makes the report; otherwise the task decides: classification and
regression score the predictions against the label column, clustering scores
the cluster labels (silhouette, and adjusted Rand and NMI against a label
column when the dataset has one). A version without tags is classification or
regression, guessed from the labels unless the job's ``task`` says.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

from aimass.entities.evaluation import Evaluation

if TYPE_CHECKING:
    from aimass.evaluation import EvaluationReport, PredictionTask
    from aimass.flavors.base import Predictor
    from aimass.registry.entities import ModelVersion
    from aimass.runtime import JobContext

#: The label column a clustering evaluation scores against when the job names none.
CLUSTER_LABELS = "target"


def _entry_hook(version: ModelVersion) -> Any:
    """The ``evaluate`` function of the entry that registered ``version``, if it has one."""
    from aimass.jobs.catalog import default_catalog

    name = version.tags.get("entry")
    entry = default_catalog().get(name) if name else None
    if entry is None or entry.evaluate is None:
        return None
    module, _, function = entry.evaluate.partition(":")
    return getattr(import_module(module), function)


def _by_task(
    ctx: JobContext, loaded: Predictor, version: ModelVersion, params: dict[str, Any]
) -> EvaluationReport:
    import numpy as np

    from aimass.errors import Unprocessable
    from aimass.evaluation import clustering_report, evaluate_loaded, infer_task
    from aimass.jobs.builtin._data import split_target

    frame = ctx.load_dataset()
    task = params.get("task") or version.tags.get("task")
    if task == "clustering":
        x, y, _ = split_target(frame, params.get("target") or CLUSTER_LABELS, required=False)
        return clustering_report(x, np.asarray(loaded.predict(x)).reshape(-1), y)
    target = params.get("target") or str(frame.columns[-1])
    if target not in frame.columns:
        raise ValueError(f"the dataset has no column {target!r} (columns: {list(frame.columns)})")
    y = frame[target].to_numpy()  # features stay as they are: a text model takes strings
    if task is None:
        task = infer_task(y)
    if task not in ("classification", "regression"):
        raise Unprocessable(
            f"{version.model} v{version.version} is a {task} model and its entry "
            f"{version.tags.get('entry')!r} names no evaluation for it"
        )
    chosen: PredictionTask = "classification" if task == "classification" else "regression"
    return evaluate_loaded(loaded, frame.drop(columns=[target]), y, task=chosen)


def run(params: dict[str, Any]) -> dict[str, Any]:
    """Load the version, evaluate it as its task wants, report the metrics."""
    from aimass import runtime
    from aimass.jobs.builtin._data import load_version

    ctx = runtime.context()
    loaded, version = load_version(ctx, params["model"], str(params["version"]))
    hook = _entry_hook(version)
    print(f"evaluating {version.model} v{version.version} on {ctx.dataset}", flush=True)
    if hook is not None:
        report: EvaluationReport = hook(ctx, loaded, version, params)
    else:
        report = _by_task(ctx, loaded, version, params)
    print(f"task: {report.task}", flush=True)
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
    ctx._write("POST", "evaluations", Evaluation, json=body)
    return {"model": version.model, "model_version": version.version, "metrics": report.metrics}
