"""Health probes: the only routes that need no token."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

router = APIRouter(tags=["health"])

PUBLIC_PATHS = frozenset({"/v2/health/live", "/v2/health/ready"})


@router.get("/v2/health/live")
def live() -> Response:
    """200 while the process answers."""
    return Response(status_code=200)


@router.get("/v2/health/ready")
def ready(request: Request) -> Response:
    """200 when the database answers, 503 otherwise."""
    from sqlalchemy import text

    try:
        with request.app.state.aimass.db.session() as session:
            session.execute(text("SELECT 1"))
    except Exception:
        return Response(status_code=503)
    return Response(status_code=200)
