"""A job whose second checkpoint is larger than the artifact store; attempt 2 resumes."""

from aimass import runtime


def main(params):
    ctx = runtime.context()
    earlier = ctx.load_checkpoint()
    if earlier is not None:
        return {"resumed": earlier.decode(), "attempt": ctx.attempt}
    ctx.save_checkpoint(b"step-1", step=1)
    ctx.save_checkpoint(b"\0" * params["bytes"], step=2)  # the store is full: 507
    return {"resumed": None}
