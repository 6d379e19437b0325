"""The accelerators this node has (NVIDIA GPUs, from the driver; no library needed)."""

from __future__ import annotations

from pathlib import Path


def detect_gpus() -> list[str]:
    """The NVIDIA GPU indices on this node ("0", "1", ...), from the driver's /proc entries."""
    root = Path("/proc/driver/nvidia/gpus")
    try:
        return [str(i) for i in range(len(list(root.iterdir())))]
    except OSError:
        return []
