"""Sign-in and sign-out pages: a throttled password check that opens a server-side session."""

from __future__ import annotations

import secrets
from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import RedirectResponse, Response

from api.console import sessions
from api.console.web import PREFIX, State, lang_of, render, safe_next, secure_headers

router = APIRouter()
# The sign-in form has no session yet: its CSRF guard is a double-submit cookie (a random value in
# a SameSite=Strict cookie that the form must echo), which another site can neither read nor set.
PRE_COOKIE = "mw_signin"


def _cookie_args(request: Request) -> dict[str, object]:
    return {"httponly": True, "samesite": "strict", "secure": request.url.scheme == "https", "path": "/"}


def _form(request: Request, *, target: str, error: str | None = None, username: str = "",
          status: int = 200) -> Response:
    """The sign-in form with a fresh double-submit value (a failed attempt gets a new one too)."""
    token = secrets.token_urlsafe(24)
    response = render(request, "login.html", {"next": target, "pre": token, "error": error, "username": username},
                      status=status)
    response.set_cookie(PRE_COOKIE, token, max_age=3600, **_cookie_args(request))  # type: ignore[arg-type]
    return response


@router.get("/login", include_in_schema=False)
async def login_page(request: Request, next: str | None = None) -> Response:
    return _form(request, target=safe_next(next))


@router.post("/login", include_in_schema=False)
async def login(request: Request, state: State, username: Annotated[str, Form(max_length=64)],
                password: Annotated[str, Form(max_length=1024)], pre: Annotated[str, Form(max_length=64)] = "",
                next: Annotated[str, Form(max_length=2000)] = "") -> Response:
    target = safe_next(next)
    cookie = request.cookies.get(PRE_COOKIE, "")
    if not pre or not secrets.compare_digest(pre, cookie):
        return _form(request, target=target, error="csrf_failed", status=403)
    ip = request.client.host if request.client else ""
    result, session_cookie = await sessions.sign_in(state.pool, username=username, password=password, ip=ip,
                                                    now=state.clock.now())
    if result != "ok" or session_cookie is None:
        status = 429 if result == "throttled" else 401
        return _form(request, target=target, error=result, username=username, status=status)
    response = RedirectResponse(target, status_code=303)
    response.set_cookie(sessions.COOKIE, session_cookie, max_age=int(sessions.LIFETIME.total_seconds()),
                        **_cookie_args(request))  # type: ignore[arg-type]
    response.delete_cookie(PRE_COOKIE, path="/")
    secure_headers(response)
    return response


@router.post("/logout", include_in_schema=False)
async def logout(request: Request, state: State) -> Response:
    # Signing out needs no CSRF token: the worst a forged one does is end a session.
    cookie = request.cookies.get(sessions.COOKIE)
    if cookie:
        await sessions.sign_out(state.pool, cookie)
    response = RedirectResponse(f"{PREFIX}/login?lang={lang_of(request)}", status_code=303)
    response.delete_cookie(sessions.COOKIE, path="/")
    secure_headers(response)
    return response
