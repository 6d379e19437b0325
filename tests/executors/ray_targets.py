"""Job functions only the Ray executor tests run (imported inside attempt processes)."""

from __future__ import annotations

import time
from typing import Any


def chatter(params: dict[str, Any]) -> dict[str, Any]:
    """Print numbered lines (some not ASCII) over a while, so the log ships in several posts."""
    for i in range(int(params.get("lines", 5))):
        print(f"line {i} ✓", flush=True)
        time.sleep(float(params.get("every", 0.2)))
    return {"printed": params.get("lines", 5)}
