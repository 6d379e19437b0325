"""The job runtime: import it in code that runs as an aimass job.

    from aimass import runtime

    def main(params):
        ctx = runtime.context()
        frame = ctx.load_dataset()
        ...
        ctx.log_metric("loss", 0.12, step=3)
        ctx.save_checkpoint(state_bytes, step=3)
        ctx.register_model("my-model", estimator)
        return {"accuracy": 0.97}

It talks to the server over HTTP with the token minted for the attempt, so it
works the same on any node; writes from an attempt that is no longer current
raise :class:`AttemptSuperseded`.
"""

from __future__ import annotations

from functools import lru_cache

from aimass.job_environment import JobEnvironment
from aimass.runtime.context import AttemptSuperseded, JobContext, NotInAJob

__all__ = ["AttemptSuperseded", "JobContext", "NotInAJob", "context"]


@lru_cache(maxsize=1)
def context() -> JobContext:
    """The attempt this process runs (from its ``AIMASS_*`` environment)."""
    job = JobEnvironment.from_env()
    if job is None:
        raise NotInAJob("aimass.runtime works inside a job: AIMASS_JOB_ID is not set")
    return JobContext(job)
