"""A job whose first attempt reports its pid and holds still ``hold`` seconds; then it
registers a model version (its lineage names the job)."""

import os
import time

from aimass import runtime


def main(params):
    from sklearn.linear_model import LogisticRegression

    ctx = runtime.context()
    if ctx.attempt == 1:
        ctx.set_outputs(pid_1=os.getpid())
        time.sleep(params["hold"])
    x, y = [[0.0], [1.0], [2.0], [3.0]], [0, 0, 1, 1]
    version = ctx.register_model(params["model"], LogisticRegression().fit(x, y), example=x[:1])
    print(f"attempt {ctx.attempt} registered version {version.version}", flush=True)
    return {"attempt": ctx.attempt}
