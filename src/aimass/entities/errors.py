"""The error body every ``/api/...`` answer other than 2xx carries."""

from __future__ import annotations

from pydantic import BaseModel, Field


class ErrorDetail(BaseModel):
    """What went wrong: a stable code, a message safe to show, and the request's id."""

    code: str = Field(description="stable: invalid_input, unauthenticated, forbidden, ...")
    message: str
    request_id: str = Field(description="also in the X-Request-ID header; quote it to an admin")


class ErrorBody(BaseModel):
    """``{"error": {"code", "message", "request_id"}}``."""

    error: ErrorDetail
