"""/docs (Swagger UI) from files in an installed package: no CDN, no inline script.

FastAPI's own page loads Swagger UI from a CDN and starts it with an inline
``<script>``, which the strict Content-Security-Policy of the HTTP edge
(``script-src 'self'``) forbids. This page loads the files that the pinned
``fastapi-offline`` package ships and starts them from a small script served
here, so it works offline and under the policy. There is no /redoc: ReDoc
injects ``<style>`` elements, which the policy's ``style-src 'self'`` refuses.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import HTMLResponse, Response
from fastapi.staticfiles import StaticFiles

STATIC_URL = "/docs/static"

_SWAGGER_INIT = """\
window.addEventListener("load", function () {
  window.ui = SwaggerUIBundle({
    url: "/openapi.json",
    dom_id: "#swagger-ui",
    layout: "BaseLayout",
    deepLinking: true,
    showExtensions: true,
    showCommonExtensions: true,
    validatorUrl: null,
    presets: [SwaggerUIBundle.presets.apis, SwaggerUIBundle.SwaggerUIStandalonePreset],
  });
});
"""


def _page(title: str, head: str, body: str) -> str:
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f"<title>{title}</title>\n"
        f'<link rel="icon" href="{STATIC_URL}/favicon.png">\n{head}</head>\n'
        f"<body>\n{body}</body>\n</html>\n"
    )


SWAGGER_PAGE = _page(
    "aimass API",
    f'<link rel="stylesheet" href="{STATIC_URL}/swagger-ui.css">\n',
    f'<div id="swagger-ui"></div>\n<script src="{STATIC_URL}/swagger-ui-bundle.js"></script>\n'
    f'<script src="{STATIC_URL}/swagger-init.js"></script>\n',
)


def _assets() -> Path:
    return Path(str(files("fastapi_offline") / "static"))


def install_docs(app: FastAPI) -> None:
    """Add /docs and its files to ``app`` (FastAPI's own pages turned off)."""

    @app.get("/docs", include_in_schema=False)
    def swagger_ui() -> HTMLResponse:
        return HTMLResponse(SWAGGER_PAGE)

    @app.get(f"{STATIC_URL}/swagger-init.js", include_in_schema=False)
    def swagger_init() -> Response:
        return Response(_SWAGGER_INIT, media_type="text/javascript")

    app.mount(STATIC_URL, StaticFiles(directory=_assets()), name="docs-static")
