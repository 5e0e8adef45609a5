"""/docs (Swagger UI) and /redoc from the vendored copies under static/vendor: no CDN."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import HTMLResponse

from api.console.web import PREFIX

router = APIRouter()
_STATIC = f"{PREFIX}/static"
# Swagger UI's and Redoc's own scripts run from our origin; the initialiser is a file, not inline code.
_CSP = ("default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
        "worker-src 'self' blob:; connect-src 'self'; frame-ancestors 'none'")

_SWAGGER = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Minewatch API - Swagger UI</title>
<link rel="stylesheet" href="{_STATIC}/vendor/swagger-ui/swagger-ui.css">
<link rel="icon" href="{_STATIC}/vendor/swagger-ui/favicon-32x32.png"></head>
<body><div id="swagger-ui"></div>
<script src="{_STATIC}/vendor/swagger-ui/swagger-ui-bundle.js"></script>
<script src="{_STATIC}/swagger-init.js"></script>
</body></html>"""

_REDOC = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Minewatch API - ReDoc</title>
<meta name="viewport" content="width=device-width, initial-scale=1"></head>
<body><redoc spec-url="/openapi.json"></redoc>
<script src="{_STATIC}/vendor/redoc/redoc.standalone.js"></script>
</body></html>"""


@router.get("/docs", include_in_schema=False)
async def swagger() -> HTMLResponse:
    return HTMLResponse(_SWAGGER, headers={"Content-Security-Policy": _CSP})


@router.get("/redoc", include_in_schema=False)
async def redoc() -> HTMLResponse:
    return HTMLResponse(_REDOC, headers={"Content-Security-Policy": _CSP})
