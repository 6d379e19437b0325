"""The OpenAPI document behind /docs: the whole API, its bearer token and its errors.

FastAPI describes the control plane's routes; ``api.inference.described``
adds the inference path's (predict, /v2, /metrics), which FastAPI never routes.
Then every operation gets the bearer scheme (so Swagger UI shows Authorize)
and the error answers it can give, with the one error body.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from aimass.api.inference import InferenceApp
from aimass.api.inference.described import router as inference_routes

BEARER = "bearer"

_ERRORS: dict[str, str] = {
    "400": "bad input",
    "401": "no token, or a token that is not valid",
    "403": "the token's role or project does not allow this",
    "404": "no such project or resource",
    "409": "conflicts with the current state (exists already, no longer current, ...)",
    "413": "the body is over the size limit",
    "415": "the body's Content-Type is not one this route reads",
    "422": "the body or a parameter is not valid; the message names the field",
    "503": "the database (or another part this needs) is unreachable; retry after Retry-After",
    "507": "a store is out of space; the message names it",
}
_WRITES = frozenset({"post", "put", "patch"})
_ERROR_REF = {"$ref": "#/components/schemas/ErrorBody"}


def _error_codes(method: str, operation: dict[str, Any], inference: bool) -> list[str]:
    """The error statuses an operation under /api may answer."""
    codes = ["401", "403", "404", "503"] if inference else ["401", "403", "404", "422", "503"]
    if (method in _WRITES or method == "delete") and not inference:
        codes.append("409")
    if method in _WRITES:
        codes += ["400", "413"]
        if not inference:
            codes.append("507")
        if "application/json" in operation.get("requestBody", {}).get("content", {}):
            codes.append("415")
    return codes


def _describe_errors(document: dict[str, Any]) -> None:
    # ErrorBody is in the components already: the predict route declares it.
    schemas = document["components"]["schemas"]
    assert "ErrorBody" in schemas, "api.inference.described declares the error body"
    # FastAPI's own 422 body is never sent: api.errors answers with ErrorBody.
    schemas.pop("HTTPValidationError", None)
    schemas.pop("ValidationError", None)
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            responses = operation.setdefault("responses", {})
            if InferenceApp.handles(path):
                responses.pop("422", None)  # the inference path answers bad input with 400
            if not path.startswith("/api/"):
                continue
            for code in _error_codes(method, operation, InferenceApp.handles(path)):
                answer = responses.setdefault(code, {"description": _ERRORS[code]})
                if code == "422":
                    answer["description"] = _ERRORS[code]
                answer["content"] = {"application/json": {"schema": _ERROR_REF}}


def _describe_downloads(document: dict[str, Any]) -> None:
    """A 200 with no content declared is a file download: say it is bytes."""
    for operations in document["paths"].values():
        ok = operations.get("get", {}).get("responses", {}).get("200")
        if ok is not None and not ok.get("content"):
            ok["content"] = {
                "application/octet-stream": {"schema": {"type": "string", "format": "binary"}}
            }


def build_openapi(app: FastAPI) -> dict[str, Any]:
    """The document for ``app`` plus the inference path, with auth and errors."""
    document = get_openapi(
        title=app.title,
        version=app.version,
        description=app.description,
        routes=[*app.routes, *inference_routes.routes],
    )
    components = document.setdefault("components", {})
    components["securitySchemes"] = {
        BEARER: {
            "type": "http",
            "scheme": "bearer",
            "description": "an aimass token: `aimass tokens create`, or the admin token file",
        }
    }
    document["security"] = [{BEARER: []}]
    _describe_errors(document)
    _describe_downloads(document)
    return document


def install_openapi(app: FastAPI) -> None:
    """Serve ``build_openapi(app)`` at /openapi.json (built once, on first request)."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = build_openapi(app)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
