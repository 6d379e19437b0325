"""A job that sleeps, with a grandchild process, and says where it runs."""

import os
import subprocess
import time

from aimass import runtime


def main(params):
    ctx = runtime.context()
    child = subprocess.Popen(["sleep", str(params.get("seconds", 60))])
    ctx.set_outputs(pid=os.getpid(), child_pid=child.pid, scratch=str(ctx.scratch))
    (ctx.scratch / "work.txt").write_text("scratch in use")
    print("sleeping", flush=True)
    time.sleep(params.get("seconds", 60))
    child.wait()
    return {"slept": params.get("seconds", 60)}
