"""``python -m aimass.cli``: the same as the ``aimass`` command."""

from __future__ import annotations

from aimass.cli import main

main()
