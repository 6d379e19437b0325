"""The one place where errors become HTTP answers: stable JSON, a request id, no internals."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect

from aimass.api.edge import error_code, request_id_var
from aimass.errors import AimassError, DatabaseUnavailable, InsufficientStorage, Unavailable
from aimass.store.db import unavailable, unreachable
from aimass.validation import describe_errors

log = logging.getLogger("aimass.api")


def error_response(
    status: int, code: str, message: str, retry_after: int | None = None
) -> JSONResponse:
    """The stable error body: ``{"error": {"code", "message", "request_id"}}``."""
    body = {"error": {"code": code, "message": message, "request_id": request_id_var.get()}}
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else {}
    if retry_after is not None:
        headers["Retry-After"] = str(retry_after)
    return JSONResponse(body, status_code=status, headers=headers or None)


async def _aimass_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, AimassError)
    if isinstance(exc, Unavailable):
        if isinstance(exc, DatabaseUnavailable):
            log.warning("database unreachable (request id %s): %s", request_id_var.get(),
                        exc.__cause__ or exc.message)  # fmt: skip
        return error_response(exc.status, exc.code, exc.message, exc.retry_after)
    if isinstance(exc, InsufficientStorage):
        log.error("out of space (request id %s): %s", request_id_var.get(), exc.message)
        return error_response(exc.status, exc.code, exc.message)
    if exc.status >= 500:
        log.error("server error %s: %s", exc.code, exc.message, exc_info=exc)
        return error_response(exc.status, exc.code, "internal error; quote the request id")
    return error_response(exc.status, exc.code, exc.message)


async def _validation_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    message = describe_errors(exc.errors(), skip=frozenset({"body"}))
    return error_response(422, "unprocessable", "invalid request: " + message)


async def _http_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    code = error_code(exc.status_code)
    message = exc.detail if isinstance(exc.detail, str) else code
    if exc.status_code == 404 and message == "Not Found":
        message = "no such route; see /docs for the API"
    return error_response(exc.status_code, code, message)


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    if unreachable(exc):  # a query made outside ``Database.session``
        return await _aimass_error(request, unavailable(exc))
    # The edge cut the body off (413, 408) and has answered; nothing went wrong here.
    if not isinstance(exc, ClientDisconnect):
        log.exception("unhandled error (request id %s)", request_id_var.get(), exc_info=exc)
    return error_response(500, "internal", "internal error; quote the request id")


def install_error_handlers(app: FastAPI) -> None:
    """Register every mapping on ``app``."""
    app.add_exception_handler(AimassError, _aimass_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(Exception, _unexpected)
