"""A job that ends (without a write) as soon as it sees the server's database gone."""

import time

from aimass import runtime
from aimass.errors import Unavailable


def main(params):
    ctx = runtime.context()
    ctx.set_outputs(started=True)
    deadline = time.monotonic() + params["max_seconds"]
    while time.monotonic() < deadline:
        try:  # one plain read, not retried: a 503 means the outage began
            ctx.client._http.send("GET", f"/api/v1/jobs/{ctx.job_id}", params=ctx._params())
        except Unavailable:
            return {"saw_outage": True}
        time.sleep(0.05)
    return {"saw_outage": False}
