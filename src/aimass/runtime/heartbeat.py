"""The attempt's heartbeat: renews its lease over HTTP and stops a superseded attempt.

Started by the executor's child process before the entry runs, when the
attempt was given a server URL. It sends its first beat after one interval, so
a job shorter than that pays nothing. When the server refuses a beat because
the attempt is no longer current (its lease ran out while it was paused or cut
off, and another attempt took over; or the job ended), the process ends at
once: a late worker never goes on to write results.

It also stops on its own when no beat was accepted for a whole lease (three
intervals: the scheduler beats at a third of the lease), counted from the
moment the last accepted beat was sent, which is before the server renewed the
lease: a server cut off from its database, or an attempt cut off from its
server, cannot renew the lease, so after that moment the leader may already
have given the job to another attempt elsewhere. Stopping then (not when the
link comes back) keeps two attempts of one job from running at once for longer
than a beat.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Mapping

from aimass.job_environment import JobEnvironment

#: Exit status of an attempt that stopped because the server gave its job to another attempt.
EXIT_SUPERSEDED = 75

#: Beats per lease: the scheduler gives an attempt ``heartbeat_s = lease / 3``.
BEATS_PER_LEASE = 3


def _stop(why: str) -> None:
    print(f"aimass: {why}; this attempt stops now", file=sys.stderr, flush=True)
    os._exit(EXIT_SUPERSEDED)


def _beat_forever(
    url: str, token: str, project: str, job_id: int, attempt: int, interval: float
) -> None:
    # The lease was renewed after this process started: counting from here is conservative.
    renewed = time.monotonic()
    lease = BEATS_PER_LEASE * interval
    # Sleep first: a job shorter than one interval never pays for the HTTP client.
    time.sleep(interval)
    import httpx

    path = f"/api/v1/jobs/{job_id}/attempts/{attempt}/heartbeat"
    # The attempt's token is limited to the job's project: name it on every beat.
    with httpx.Client(
        base_url=url, headers={"Authorization": f"Bearer {token}"}, params={"project": project}
    ) as http:
        while True:
            sent = time.monotonic()
            left = renewed + lease - sent
            # A slow server may answer until the lease runs out. Past it (this process was
            # paused), one last beat asks whether the attempt is still current.
            try:
                response = http.post(path, timeout=left if left > 0.05 else interval)
            except httpx.HTTPError as exc:
                response = None
                failure = str(exc) or type(exc).__name__
            if response is not None and response.status_code in (401, 404, 409):
                try:
                    message = response.json()["error"]["message"]
                except Exception:
                    message = response.text[:200]
                _stop(f"heartbeat refused ({message})")
            if response is not None and response.is_success:
                renewed = sent
            else:
                if response is not None:
                    failure = f"HTTP {response.status_code}"
                if time.monotonic() - renewed >= lease:
                    _stop(f"no heartbeat accepted for {lease:g} s, the lease ran out ({failure})")
                print(
                    f"aimass: heartbeat failed ({failure}); retrying", file=sys.stderr, flush=True
                )
            time.sleep(max(0.0, min(interval, renewed + lease - time.monotonic())))


def start_heartbeat(env: Mapping[str, str]) -> threading.Thread | None:
    """Start beating in a daemon thread if the attempt talks to a server; else None."""
    job = JobEnvironment.from_env(env)
    if job is None or not job.url or not job.token or not job.heartbeat_s:
        return None
    thread = threading.Thread(
        target=_beat_forever,
        args=(job.url, job.token, job.project, job.job_id, job.attempt, max(0.1, job.heartbeat_s)),
        name="aimass-heartbeat",
        daemon=True,
    )
    thread.start()
    return thread
