"""Caps on what a dataset upload may hold once parsed, and the tally that enforces them.

A small file can be large: a Parquet column of one repeated value, an NPZ member of
deflated zeros or a CSV of empty cells expands to gigabytes. Readers check what a
file declares (Parquet footers, NPZ headers) before reading any data, then count
what they actually decode, so a refusal comes before the memory is spent.
"""

from __future__ import annotations

from dataclasses import dataclass

from aimass.errors import TooLarge


@dataclass(frozen=True)
class DatasetLimits:
    """The most rows, cells, columns and in-memory bytes one dataset may have."""

    max_rows: int = 10_000_000
    max_cells: int = 100_000_000
    max_bytes: int = 1024**3
    #: Each column gets a profile, so a million columns is a million profiles.
    max_columns: int = 10_000


def check_declared(
    fmt: str,
    limits: DatasetLimits,
    *,
    rows: int = 0,
    columns: int = 0,
    cells: int = 0,
    nbytes: int = 0,
) -> None:
    """Refuse what a file says about itself (header, footer) when it passes a cap."""
    _check(fmt, "declares", rows, limits.max_rows, "rows", "AIMASS_DATASET_MAX_ROWS")
    _check(fmt, "declares", columns, limits.max_columns, "columns", None)
    _check(fmt, "declares", cells, limits.max_cells, "cells", "AIMASS_DATASET_MAX_CELLS")
    _check(fmt, "declares", nbytes, limits.max_bytes, "bytes in memory", "AIMASS_DATASET_MAX_BYTES")


class Tally:
    """Running counts of what a reader has decoded; raises TooLarge as one passes its cap."""

    def __init__(self, fmt: str, limits: DatasetLimits) -> None:
        self.fmt = fmt
        self.limits = limits
        self.rows = 0
        self.cells = 0
        self.nbytes = 0

    def add(self, *, rows: int = 0, cells: int = 0, nbytes: int = 0) -> None:
        """Count more decoded rows, cells and bytes; refuse once any total passes its cap."""
        self.rows += rows
        self.cells += cells
        self.nbytes += nbytes
        limits = self.limits
        _check(self.fmt, "holds", self.rows, limits.max_rows, "rows", "AIMASS_DATASET_MAX_ROWS")
        _check(self.fmt, "holds", self.cells, limits.max_cells, "cells", "AIMASS_DATASET_MAX_CELLS")
        _check(
            self.fmt,
            "expands to",
            self.nbytes,
            limits.max_bytes,
            "bytes in memory",
            "AIMASS_DATASET_MAX_BYTES",
        )


def _check(fmt: str, verb: str, value: int, cap: int, what: str, setting: str | None) -> None:
    if value <= cap:
        return
    # "holds at least": a running count stops at the first batch past the cap.
    amount = f"at least {value:,}" if verb != "declares" else f"{value:,}"
    source = f" ({setting})" if setting else ""
    fix = (
        f"; split the data or ask an admin to raise {setting}"
        if setting
        else "; split the table into narrower ones"
    )
    raise TooLarge(f"the {fmt} file {verb} {amount} {what}; the limit is {cap:,}{source}{fix}")
