"""Process look-ups the serving benchmarks share: a server's process tree and its runners."""

from __future__ import annotations

import os
from pathlib import Path


def descendants(pid: int) -> list[int]:
    """Every process below ``pid`` (workers, runner processes under bubblewrap), from /proc."""
    found: list[int] = []
    for task in os.listdir(f"/proc/{pid}/task"):
        try:
            children = Path(f"/proc/{pid}/task/{task}/children").read_text().split()
        except OSError:
            continue
        for child in map(int, children):
            found += [child, *descendants(child)]
    return found


def runner_pids(home: Path) -> list[int]:
    """Runner processes (the Python inside bubblewrap) serving files of this server's home."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            words = (entry / "cmdline").read_bytes().decode(errors="replace").split("\0")
        except OSError:
            continue
        if (
            "bwrap" not in words[0]
            and "aimass.flavors._host" in words
            and any(str(home) in word for word in words)
        ):
            found.append(int(entry.name))
    return found
