"""A job that writes metrics until one write has waited out a database outage, then 5 more."""

import time

from aimass import runtime


def main(params):
    ctx = runtime.context()
    ctx.set_outputs(started=True)
    step, after, deadline = 0, None, time.monotonic() + params["max_seconds"]
    while (after is None or step < after + 5) and time.monotonic() < deadline:
        step += 1
        began = time.monotonic()
        ctx.log_metric("step", step, step=step)  # retried on 503 inside the runtime
        if after is None and time.monotonic() - began > 1.0:
            after = step
        time.sleep(0.05)
    ctx.save_checkpoint(b"done", step=step)
    return {"steps": step, "waited_at": after}
