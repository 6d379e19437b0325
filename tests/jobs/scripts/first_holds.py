"""A job whose first attempt holds (until ended from outside); any later attempt ends at once."""

import time

from aimass import runtime


def main(params):
    ctx = runtime.context()
    if ctx.attempt == 1:
        print("attempt 1 holding", flush=True)
        time.sleep(params.get("hold_s", 300))
    return {"attempt": ctx.attempt}
