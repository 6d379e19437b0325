"""How an attempt's writes ride out a server whose database is briefly down.

The server answers 503 (``Unavailable``, with ``Retry-After``) while its
database is unreachable, and does not answer at all while it restarts; the
attempt retries the same write with jittered exponential backoff for as long
as its lease lasts, then gives up with the last error. A refusal that will not
change (409, 401, 413, 507) is never retried.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import TypeVar

from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception_type,
    stop_after_delay,
    wait_exponential_jitter,
)

from aimass.errors import Unavailable

T = TypeVar("T")

#: How long a write is retried when the attempt has no lease (run without a scheduler).
DEFAULT_WINDOW_S = 30.0
#: The longest pause between two tries.
MAX_WAIT_S = 2.0


def _say(state: RetryCallState) -> None:
    outcome = state.outcome
    error = outcome.exception() if outcome is not None else None
    print(
        f"aimass: the server is unavailable ({error}); retrying (try {state.attempt_number})",
        file=sys.stderr,
        flush=True,
    )


def retry_unavailable(call: Callable[[], T], window_s: float) -> T:
    """``call()``, tried again on ``Unavailable`` (or no server) for up to ``window_s`` seconds."""
    from aimass.client._http import ServerUnreachable  # the runtime loads the SDK lazily

    retrying = Retrying(
        retry=retry_if_exception_type((Unavailable, ServerUnreachable)),
        stop=stop_after_delay(window_s),
        wait=wait_exponential_jitter(multiplier=0.1, max=MAX_WAIT_S, jitter=0.1),
        before_sleep=_say,
        reraise=True,
    )
    return retrying(call)
