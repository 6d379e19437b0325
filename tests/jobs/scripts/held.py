"""A long job: it says where its scratch folder is, then holds until a file appears there.

The test that starts several of these proves they run at once by seeing them all
running before it releases any (no timing). After ``hold_s`` seconds it gives up
and reports that nobody released it.
"""

import time

from aimass import runtime


def main(params):
    ctx = runtime.context()
    ctx.set_outputs(scratch=str(ctx.scratch))
    print("holding", flush=True)
    deadline = time.monotonic() + params.get("hold_s", 120)
    while time.monotonic() < deadline:
        if (ctx.scratch / "release").exists():
            return {"released": True}
        time.sleep(0.1)
    return {"released": False}
