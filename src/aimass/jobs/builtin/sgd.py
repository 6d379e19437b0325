"""``sklearn.sgd_classifier``: a linear classifier trained epoch by epoch, resumable.

Each epoch is one ``partial_fit`` pass over the shuffled training split; the
validation accuracy and log loss are logged as step metrics and the model is
checkpointed (skops), so an attempt that dies resumes at the next epoch.
"""

from __future__ import annotations

import time
from typing import Any


def _load(blob: bytes) -> Any:
    import skops.io as sio

    # Our own checkpoint, but still loaded as data: only scikit-learn and numpy types.
    types = [t for t in sio.get_untrusted_types(data=blob) if t.startswith(("sklearn.", "numpy."))]
    return sio.loads(blob, trusted=types)


def train(params: dict[str, Any]) -> dict[str, Any]:
    """Train, log per epoch, checkpoint, and register (or keep) the model."""
    import numpy as np
    import skops.io as sio
    from sklearn.linear_model import SGDClassifier
    from sklearn.metrics import accuracy_score, f1_score, log_loss
    from sklearn.model_selection import train_test_split
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from aimass import runtime
    from aimass.jobs.builtin._data import split_target

    ctx = runtime.context()
    x, y, _ = split_target(ctx.load_dataset(), params.get("target"))
    assert y is not None
    seed = int(params["seed"])
    x_train, x_val, y_train, y_val = train_test_split(
        x, y, test_size=params["test_size"], random_state=seed, stratify=y
    )
    scaler = StandardScaler().fit(x_train)
    x_train, x_val = scaler.transform(x_train), scaler.transform(x_val)
    classes = np.unique(y)
    clf = SGDClassifier(
        loss="log_loss",
        learning_rate="constant",
        eta0=params["learning_rate"],
        alpha=params["alpha"],
        random_state=seed,
    )
    start = 0
    blob = ctx.load_checkpoint()
    if blob is not None and ctx.checkpoint_step is not None:
        clf, start = _load(blob), ctx.checkpoint_step
        print(f"resuming from the checkpoint of epoch {start}", flush=True)
    ctx.log_params(params)
    rng = np.random.default_rng(seed)
    accuracy = loss = 0.0
    for epoch in range(start + 1, params["epochs"] + 1):
        order = rng.permutation(len(x_train))
        clf.partial_fit(x_train[order], y_train[order], classes=classes)
        accuracy = float(accuracy_score(y_val, clf.predict(x_val)))
        loss = float(log_loss(y_val, clf.predict_proba(x_val), labels=classes))
        ctx.log_metrics({"accuracy": accuracy, "loss": loss}, step=epoch)
        print(
            f"epoch {epoch}/{params['epochs']}: accuracy={accuracy:.4f} loss={loss:.4f}", flush=True
        )
        ctx.save_checkpoint(sio.dumps(clf), step=epoch)
        if params["sleep_s"]:
            time.sleep(params["sleep_s"])
    f1 = float(f1_score(y_val, clf.predict(x_val), average="macro"))
    metrics = {"accuracy": accuracy, "loss": loss, "f1": f1}
    pipeline = make_pipeline(scaler, clf)
    outputs: dict[str, Any] = {**metrics, "epochs": params["epochs"], "resumed_from": start}
    if params["register_model"]:
        name = params.get("model_name") or f"{ctx.dataset}-sgd"
        version = ctx.register_model(name, pipeline, example=x[:2], metrics=metrics)
        outputs.update(model=version.model, model_version=version.version)
    else:
        path = ctx.scratch / "model.skops"
        sio.dump(pipeline, path)
        ctx.log_artifact(path)
    return outputs
