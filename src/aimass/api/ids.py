"""Typed integers for path and query parameters: every one is bounded to what the database holds.

An unbounded ``int`` lets 2**63 through to PostgreSQL's BIGINT (and SQLite's
INTEGER), which fails deep in the driver as a 500; these types make it a 422
that names the parameter. Every integer path or query parameter in
``api/routes`` uses one of them (``tests/security/test_error_ids.py`` walks the
OpenAPI document to keep it so).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Path, Query

#: The largest value a signed 64-bit column holds.
MAX_INT = 2**63 - 1

#: A row id or a 1-based number in the path: job, run, token ids; version and attempt numbers.
Id = Annotated[int, Path(ge=1, le=MAX_INT)]
#: The same, as an optional query parameter (``?parent_id=``, ``?attempt=``).
QueryId = Annotated[int | None, Query(ge=1, le=MAX_INT)]
#: How many rows to skip.
Offset = Annotated[int, Query(ge=0, le=MAX_INT)]
#: A count from zero in the query (a checkpoint's step).
Step = Annotated[int, Query(ge=0, le=MAX_INT)]
