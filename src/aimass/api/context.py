"""Per-request context: the request id, shared by the middleware and error bodies."""

from __future__ import annotations

from contextvars import ContextVar

request_id_var: ContextVar[str] = ContextVar("aimass_request_id", default="-")
