"""A short job that registers one version of ``model`` (the chaos test counts them).

The model is a tiny ONNX file (an Identity, base64 in ``onnx``): cheap to write,
upload and inspect, so the run measures the platform, not model code.
"""

import base64
import time

from aimass import runtime


def main(params):
    ctx = runtime.context()
    time.sleep(params.get("sleep_s", 0.0))
    path = ctx.scratch / "identity.onnx"
    path.write_bytes(base64.b64decode(params["onnx"]))
    version = ctx.register_model(params["model"], path)
    return {"version": version.version}
