"""The web console: server-rendered pages for people (sign-in, overview, mines, cases), under /console/.

`install(app)` mounts it on the API's app, with `/` redirecting to it and /docs, /redoc served
from vendored files (static/vendor, no CDN)."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import RedirectResponse
from fastapi.staticfiles import StaticFiles

from api.console import cases, docs, pages, signin
from api.console.cache import PageCache
from api.console.web import PREFIX, CsrfFailed, SignInRequired, on_csrf_failed, on_sign_in_required

STATIC = Path(__file__).parent / "static"


def install(app: FastAPI, *, cache_ttl_s: float) -> None:
    """Mount the console, its static files, the `/` redirect and the local API docs on `app`.
    The app must be built with `docs_url=None, redoc_url=None` (the CDN versions)."""
    for module in (signin, pages, cases):
        app.include_router(module.router, prefix=PREFIX)
    app.include_router(docs.router)
    app.mount(f"{PREFIX}/static", StaticFiles(directory=STATIC), name="console-static")
    app.add_exception_handler(SignInRequired, on_sign_in_required)
    app.add_exception_handler(CsrfFailed, on_csrf_failed)
    app.state.console_cache = PageCache(ttl=cache_ttl_s)

    @app.get("/", include_in_schema=False)
    async def root() -> RedirectResponse:
        return RedirectResponse(f"{PREFIX}/", status_code=307)
