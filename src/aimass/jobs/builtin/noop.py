"""``noop``: a job that does nothing, for trying the platform and measuring its overhead."""

from __future__ import annotations

import time
from typing import Any


def run(params: dict[str, Any]) -> None:
    """Sleep ``sleep_s`` seconds (default 0) and succeed."""
    if params.get("sleep_s"):
        time.sleep(float(params["sleep_s"]))
