"""A job whose first attempt reports its pid and holds still ``hold`` seconds; then it
registers a model version (a tiny ONNX file, base64 in ``onnx``; its lineage names the job).
With ``register_first``, attempt 1 registers before it holds (a later attempt replays it)."""

import base64
import os
import time

from aimass import runtime


def main(params):
    ctx = runtime.context()
    path = ctx.scratch / "identity.onnx"
    path.write_bytes(base64.b64decode(params["onnx"]))
    if params.get("register_first"):
        version = ctx.register_model(params["model"], path)
    if ctx.attempt == 1:
        ctx.set_outputs(pid_1=os.getpid())
        time.sleep(params["hold"])
    if not params.get("register_first"):
        version = ctx.register_model(params["model"], path)
    print(f"attempt {ctx.attempt} registered version {version.version}", flush=True)
    return {"attempt": ctx.attempt}
