"""RFC 9457 problem documents: exception handlers, and the error responses every route declares."""

from __future__ import annotations

import logging
import re
from typing import Any

import asyncpg
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from api.errors import PROBLEM_BASE, ApiError, Unavailable
from api.schemas import Problem
from minewatch.text import log_safe

log = logging.getLogger(__name__)

PROBLEM_MEDIA_TYPE = "application/problem+json"

_STATUS: dict[int, tuple[str, str]] = {
    400: ("bad-request", "Bad request"),
    401: ("unauthorized", "Authentication required"),
    403: ("forbidden", "Forbidden"),
    404: ("not-found", "Not found"),
    405: ("method-not-allowed", "Method not allowed"),
    408: ("timeout", "Request timeout"),
    409: ("conflict", "Conflict"),
    413: ("too-large", "Request too large"),
    415: ("unsupported-media-type", "Unsupported media type"),
    422: ("validation", "Validation failed"),
    500: ("internal", "Internal error"),
    503: ("unavailable", "Service unavailable"),
}

_DESCRIPTIONS: dict[int, str] = {
    400: "Malformed request or pagination cursor",
    401: "Missing, unknown or revoked bearer token",
    403: "The caller's role may not do this",
    404: "Not found, or outside the caller's scope",
    408: "The request body did not arrive within the API's time limit (MINEWATCH_API_BODY_TIMEOUT_S)",
    409: "Not allowed in the resource's current state",
    413: "The request body is larger than the API accepts (MINEWATCH_API_MAX_BODY_BYTES)",
    422: "Request validation failed",
    503: "The database cannot be reached, or did not answer within the API's time limit",
}


class ProblemResponse(JSONResponse):
    """A JSON response with the problem media type."""

    media_type = PROBLEM_MEDIA_TYPE


def problem(status: int, detail: str, *, slug: str | None = None, title: str | None = None,
            instance: str | None = None, headers: dict[str, str] | None = None,
            errors: list[dict[str, Any]] | None = None) -> ProblemResponse:
    """Build a problem response; `slug` defaults to the status's standard type."""
    default_slug, default_title = _STATUS.get(status, ("error", "Error"))
    body: dict[str, Any] = {
        "type": PROBLEM_BASE + (slug or default_slug), "title": title or default_title,
        "status": status, "detail": detail,
    }
    if instance:
        body["instance"] = instance
    if errors is not None:
        body["errors"] = errors
    return ProblemResponse(body, status_code=status, headers=headers)


def error_responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    """The `responses=` of a route: a Problem for each error status it can answer."""
    return {c: {"model": Problem, "description": _DESCRIPTIONS.get(c, _STATUS[c][1])} for c in codes}


# Every authenticated read answers these; routes add 403/409 where they apply.
READ_ERRORS = error_responses(400, 401, 404, 422, 503)


def _issues(exc: RequestValidationError) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for err in exc.errors():
        # `input` and `ctx` may hold anything (bytes, exceptions): keep only what is safe to echo.
        loc = [p if isinstance(p, int) else str(p) for p in err.get("loc", ())]
        out.append({"loc": loc, "msg": str(err.get("msg", "")), "type": str(err.get("type", ""))})
    return out


async def _on_api_error(request: Request, exc: Exception) -> ProblemResponse:
    assert isinstance(exc, ApiError)
    return problem(exc.status, exc.detail, slug=exc.slug, title=exc.title, instance=request.url.path,
                   headers=exc.headers)


async def _on_validation(request: Request, exc: Exception) -> ProblemResponse:
    assert isinstance(exc, RequestValidationError)
    return problem(422, "the request does not match the API's schema", instance=request.url.path,
                   errors=_issues(exc))


async def _on_http(request: Request, exc: Exception) -> ProblemResponse:
    assert isinstance(exc, StarletteHTTPException)
    headers = dict(exc.headers) if exc.headers else {}
    if exc.status_code == 405:
        # FastAPI makes one route per method, and Starlette's Allow names only the first
        # route that matched the path; name every method the path accepts.
        headers["Allow"] = ", ".join(sorted(_allowed_methods(request)))
    return problem(exc.status_code, str(exc.detail), instance=request.url.path, headers=headers or None)


def _allowed_methods(request: Request) -> set[str]:
    # From the OpenAPI document rather than the router's internals, which differ across
    # FastAPI versions; the document lists exactly the operations the app serves.
    allowed: set[str] = set()
    for template, item in request.app.openapi().get("paths", {}).items():
        pattern = "^" + re.sub(r"\\\{[^/]+?\\\}", "[^/]+", re.escape(template)) + "$"
        if re.match(pattern, request.url.path):
            allowed |= {m.upper() for m in item}
    if "GET" in allowed:
        allowed.add("HEAD")
    return allowed


def _unavailable(request: Request, detail: str) -> ProblemResponse:
    err = Unavailable(detail)
    return problem(err.status, err.detail, slug=err.slug, title=err.title, instance=request.url.path)


async def _on_database_down(request: Request, exc: Exception) -> ProblemResponse:
    log.warning("database unavailable: %s", exc)
    return _unavailable(request, "the database cannot be reached")


async def _on_statement_timeout(request: Request, exc: Exception) -> ProblemResponse:
    # the path is the client's: escaped so it cannot forge or break the log line
    log.warning("%s %s: statement cancelled: %s", log_safe(request.method, 20), log_safe(request.url.path), exc)
    return _unavailable(request, "the database did not answer within the API's time limit; retry later, "
                                 "or ask for a shorter range or a larger step")


# Connection-level failures only: a query bug must stay a loud 500, not hide as a 503.
_DB_DOWN: tuple[type[Exception], ...] = (
    asyncpg.PostgresConnectionError, asyncpg.CannotConnectNowError,
    asyncpg.TooManyConnectionsError, asyncpg.InterfaceError, ConnectionError,
)


def install(app: FastAPI) -> None:
    """Register the problem handlers and the problem-aware OpenAPI generator on `app`."""
    app.add_exception_handler(ApiError, _on_api_error)
    app.add_exception_handler(RequestValidationError, _on_validation)
    app.add_exception_handler(StarletteHTTPException, _on_http)
    for exc_type in _DB_DOWN:
        app.add_exception_handler(exc_type, _on_database_down)
    # statement_timeout (settings.api_statement_timeout_s) or an operator's pg_cancel_backend
    app.add_exception_handler(asyncpg.QueryCanceledError, _on_statement_timeout)

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(title=app.title, version=app.version, description=app.description,
                                 routes=app.routes, tags=app.openapi_tags)
            _problem_media_types(schema)
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def _problem_media_types(schema: dict[str, Any]) -> None:
    """Error responses are served as application/problem+json; say so in the document."""
    for path_item in schema.get("paths", {}).values():
        for op in path_item.values():
            for code, resp in op.get("responses", {}).items():
                content = resp.get("content")
                if not content or str(code)[:1] not in ("4", "5") or "application/json" not in content:
                    continue
                if str(code) == "503" and "Problem" not in str(content):
                    continue  # readiness answers 503 with its own JSON report
                resp["content"] = {PROBLEM_MEDIA_TYPE: content["application/json"]}
            if "401" in op.get("responses", {}):
                op["responses"]["401"]["headers"] = {
                    "WWW-Authenticate": {"schema": {"type": "string"}, "description": "Bearer challenge"}}
