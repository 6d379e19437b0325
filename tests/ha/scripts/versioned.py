"""A short job that registers one version of ``model`` (the chaos test counts them)."""

import time

from aimass import runtime


def main(params):
    from sklearn.linear_model import LogisticRegression

    ctx = runtime.context()
    time.sleep(params.get("sleep_s", 0.0))
    x, y = [[0.0], [1.0], [2.0], [3.0]], [0, 0, 1, 1]
    version = ctx.register_model(params["model"], LogisticRegression().fit(x, y), example=x[:1])
    return {"version": version.version}
