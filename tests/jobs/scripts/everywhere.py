"""A job that makes every runtime call once; run in a project other than ``default``.

Attempt 1 logs a metric, saves a checkpoint and fails; attempt 2 loads the
checkpoint, loads the dataset, keeps an artifact, registers a model and sets outputs.
"""

from aimass import runtime


def main(params):
    from sklearn.linear_model import LogisticRegression

    ctx = runtime.context()
    blob = ctx.load_checkpoint()
    if blob is None:
        ctx.log_metric("loss", 0.5, step=1)
        ctx.save_checkpoint(b"step-1", step=1)
        raise RuntimeError("attempt 1 stops after its checkpoint, so attempt 2 resumes")
    frame = ctx.load_dataset()
    ctx.log_metric("loss", 0.25, step=2)
    note = ctx.scratch / "note.txt"
    note.write_text(f"{ctx.project}\n")
    ctx.log_artifact(note)
    ctx.log_params({"rows": len(frame)})
    x, y = frame.drop(columns="target"), frame["target"]
    model = LogisticRegression(max_iter=500).fit(x, y)
    version = ctx.register_model(
        "everywhere", model, example=x.iloc[:2], tags={"task": "classification"}
    )
    ctx.set_outputs(resumed_from=blob.decode(), project=ctx.project)
    return {"version": version.version}
