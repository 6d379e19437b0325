"""The attempt's heartbeat: renews its lease over HTTP and stops a superseded attempt.

Started by the executor's child process before the entry runs, when the
attempt was given a server URL. It sends its first beat after one interval, so
a job shorter than that pays nothing. When the server refuses a beat because
the attempt is no longer current (its lease ran out while it was paused or cut
off, and another attempt took over; or the job ended), the process ends at
once: a late worker never goes on to write results.
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


def _beat_forever(
    url: str, token: str, project: str, job_id: int, attempt: int, interval: float
) -> None:
    # Sleep first: a job shorter than one interval never pays for the HTTP client.
    time.sleep(interval)
    import httpx

    path = f"/api/v1/jobs/{job_id}/attempts/{attempt}/heartbeat"
    # The attempt's token is limited to the job's project: name it on every beat.
    with httpx.Client(
        base_url=url,
        headers={"Authorization": f"Bearer {token}"},
        params={"project": project},
        timeout=interval,
    ) as http:
        while True:
            try:
                response = http.post(path)
            except httpx.HTTPError as exc:
                print(f"aimass: heartbeat failed ({exc}); retrying", file=sys.stderr, flush=True)
                time.sleep(interval)
                continue
            if response.status_code in (401, 404, 409):
                try:
                    message = response.json()["error"]["message"]
                except Exception:
                    message = response.text[:200]
                print(
                    f"aimass: heartbeat refused ({message}); this attempt stops now",
                    file=sys.stderr,
                    flush=True,
                )
                os._exit(EXIT_SUPERSEDED)
            time.sleep(interval)


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
