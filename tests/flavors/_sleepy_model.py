"""A model whose predict never finishes in time (unpickled by the sandboxed host)."""

from __future__ import annotations

import time
from typing import Any


class Sleepy:
    """predict sleeps a minute: a stand-in for a model stuck in a loop."""

    def predict(self, batch: Any) -> Any:
        time.sleep(60)
        return batch
