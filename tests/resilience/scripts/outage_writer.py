"""A job that writes metrics for ``seconds`` (through a database outage), then checkpoints."""

import time

from aimass import runtime


def main(params):
    ctx = runtime.context()
    ctx.set_outputs(started=True)
    end = time.monotonic() + params["seconds"]
    step = 0
    while time.monotonic() < end:
        step += 1
        ctx.log_metric("step", step, step=step)
        time.sleep(0.05)
    ctx.save_checkpoint(b"done", step=step)
    return {"steps": step}
