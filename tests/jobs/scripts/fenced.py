"""A job whose first attempt holds still (the test pauses it), then registers a model."""

import os
import time

from aimass import runtime


def main(params):
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression

    ctx = runtime.context()
    if ctx.attempt == 1:
        ctx.set_outputs(pid_1=os.getpid())
        print("attempt 1 waits", flush=True)
        time.sleep(params["hold"])
    x, y = load_iris(return_X_y=True)
    model = LogisticRegression(max_iter=500).fit(x, y)
    try:
        version = ctx.register_model("fenced", model, example=x[:2])
    except runtime.AttemptSuperseded as exc:
        print(f"attempt {ctx.attempt}: {exc.message}", flush=True)
        raise
    print(f"attempt {ctx.attempt} registered version {version.version}", flush=True)
    return {"attempt": ctx.attempt}
