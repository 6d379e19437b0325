"""A job that counts steps, checkpointing each one; it resumes from its checkpoint."""

import os
import time

from aimass import runtime


def main(params):
    ctx = runtime.context()
    start = 0
    blob = ctx.load_checkpoint()
    if blob is not None:
        start = int(blob.decode())
    ctx.set_outputs(**{f"pid_{ctx.attempt}": os.getpid(), f"start_{ctx.attempt}": start})
    print(f"attempt {ctx.attempt} starts after step {start}", flush=True)
    for step in range(start + 1, params["steps"] + 1):
        ctx.log_metric("step", step, step=step)
        ctx.save_checkpoint(str(step).encode(), step=step)
        print(f"step {step}", flush=True)
        time.sleep(params["pause"])
    return {"resumed_from": start}
