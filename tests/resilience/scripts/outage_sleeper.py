"""A job that says it started, then sleeps ``seconds`` without a write (it ends in an outage)."""

import time

from aimass import runtime


def main(params):
    runtime.context().set_outputs(started=True)
    time.sleep(params["seconds"])
    return {"slept": params["seconds"]}
