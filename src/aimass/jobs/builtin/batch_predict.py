"""``batch_predict``: a model version over the job's dataset, chunk by chunk, into a CSV file."""

from __future__ import annotations

from typing import Any


def run(params: dict[str, Any]) -> dict[str, Any]:
    """Predict every row in chunks of ``chunk_rows``; log progress; keep predictions.csv."""
    import numpy as np
    import pandas as pd

    from aimass import runtime
    from aimass.jobs.builtin._data import load_version

    ctx = runtime.context()
    frame = ctx.load_dataset()
    target = params.get("target")
    if target is not None and target in frame.columns:
        frame = frame.drop(columns=[target])
    loaded, version = load_version(ctx, params["model"], str(params["version"]))
    out = ctx.scratch / "predictions.csv"
    total, chunk = len(frame), int(params["chunk_rows"])
    done = 0
    for start in range(0, max(total, 1), chunk):
        part = frame.iloc[start : start + chunk]
        if part.empty:
            break
        predicted = np.asarray(loaded.predict(part.to_numpy(dtype=np.float32)))
        columns = {"row": np.arange(start, start + len(part))}
        if predicted.ndim == 1:
            columns["prediction"] = predicted
        else:
            for i in range(predicted.shape[1]):
                columns[f"prediction_{i}"] = predicted[:, i]
        pd.DataFrame(columns).to_csv(out, mode="a", header=start == 0, index=False)
        done += len(part)
        ctx.log_metric("progress", done / total, step=done)
        print(f"predicted {done}/{total} rows", flush=True)
    ctx.log_artifact(out)
    return {"model": version.model, "model_version": version.version, "rows": done}
