"""``classical.kmeans``: cluster a table's feature columns and register the ONNX model."""

from __future__ import annotations

import time
from typing import Any


def run_kmeans(params: dict[str, Any]) -> dict[str, Any]:
    """Fit standard scaling + k-means, report inertia, silhouette and agreement with labels."""
    from sklearn.cluster import KMeans
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from aimass import runtime
    from aimass.evaluation import clustering_report
    from aimass.jobs.builtin._data import split_target
    from aimass.zoo._onnx import check_onnx, sklearn_to_onnx
    from aimass.zoo._supervised import default_model_name, logger

    ctx = runtime.context()
    x, y, _ = split_target(ctx.load_dataset(), params.get("target"), required=False)
    ctx.log_params(params)
    began = time.monotonic()
    model = make_pipeline(
        StandardScaler(),
        KMeans(
            n_clusters=params["n_clusters"],
            n_init=params["n_init"],
            max_iter=params["max_iter"],
            random_state=params["seed"],
        ),
    ).fit(x)
    seconds = time.monotonic() - began
    labels = model.predict(x)
    report = clustering_report(x, labels, y)  # on the features as given, as `evaluate` does
    metrics = {"inertia": float(model[-1].inertia_), **report.metrics}
    logger(ctx)(1, metrics)
    onnx_model = sklearn_to_onnx(model, int(x.shape[1]))
    check_onnx(onnx_model, model, x[:32])
    version = ctx.register_model(
        params.get("model_name") or default_model_name(ctx, "classical.kmeans"),
        onnx_model,
        metrics=metrics,
        tags={"task": "clustering", "entry": "classical.kmeans"},
        description=f"classical.kmeans trained on {ctx.dataset} by job {ctx.job_id}",
    )
    return {
        **metrics,
        "train_seconds": round(seconds, 3),
        "model": version.model,
        "model_version": version.version,
    }
