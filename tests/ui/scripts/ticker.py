"""A job that logs a hostile line, then a line and a metric every 0.3 s until cancelled."""

import time

from aimass import runtime

HOSTILE = "<img src=x onerror=window.__pwned=1>"


def main(params):
    ctx = runtime.context()
    print(HOSTILE, flush=True)
    for step in range(1, 2000):
        ctx.log_metric("loss", 1.0 / step, step=step)
        print(f"tick {step}", flush=True)
        time.sleep(0.3)
