"""What every console page shares: templates, the language, the signed-in session, CSRF, HTML errors."""

from __future__ import annotations

import json
import secrets
from collections.abc import Awaitable, Callable, Iterable
from datetime import datetime
from typing import Annotated, Any
from urllib.parse import quote
from zoneinfo import ZoneInfo

from fastapi import Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from jinja2 import Environment, PackageLoader, select_autoescape
from markupsafe import Markup

from api.console import i18n
from api.console.cache import PageCache, scope_key
from api.console.sessions import COOKIE, ConsoleSession, lookup
from api.deps import AppState, get_state

PREFIX = "/console"
CSRF_HEADER = "X-CSRF-Token"
CSRF_FIELD = "csrf"
# Console pages run only our own scripts (vendored, no inline code); ECharts and htmx set
# inline styles. Framing is refused (clickjacking of the action buttons).
CSP = ("default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
       "connect-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'")
# Times are shown in the mines' zone: every mine of the registry so far is in China.
LOCAL = ZoneInfo("Asia/Shanghai")

# auto_reload off: templates ship with the code, and checking each one's file time on every render was
# a stat() per template per request.
_env = Environment(loader=PackageLoader("api.console", "templates"), autoescape=select_autoescape(default=True),
                   trim_blocks=True, lstrip_blocks=True, auto_reload=False)


def _local(value: datetime | None, fmt: str = "%Y-%m-%d %H:%M") -> str:
    if value is None:
        return "—"
    if fmt == "%Y-%m-%d %H:%M":  # the common case, without strftime (a tenth of a table's render)
        return value.astimezone(LOCAL).replace(tzinfo=None).isoformat(" ", "minutes")
    return value.astimezone(LOCAL).strftime(fmt)


def _tojson(value: Any) -> Markup:
    """JSON for a `<script type="application/json">` block: `<`, `>` and `&` escaped so no value can end it."""
    text = json.dumps(value, ensure_ascii=False, default=str, separators=(",", ":"))
    return Markup(text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026"))  # noqa: S704


def _rawjson(value: str) -> Markup:
    """JSON text already encoded (by PostgreSQL, e.g. a chart's series) for a JSON block, escaped as `tojson`."""
    return Markup(value.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026"))  # noqa: S704


_env.filters["local"] = _local
_env.filters["tojson"] = _tojson
_env.filters["rawjson"] = _rawjson


class SignInRequired(Exception):
    """No valid session: pages redirect to the sign-in page, htmx fragments answer 401."""


class CsrfFailed(Exception):
    """A POST without the session's synchronizer token."""


def lang_of(request: Request) -> i18n.Lang:
    return i18n.pick(request.query_params.get("lang"), request.cookies.get(i18n.COOKIE))


def is_htmx(request: Request) -> bool:
    return request.headers.get("HX-Request") == "true"


def _globals(request: Request, lang: i18n.Lang, session: ConsoleSession | None) -> dict[str, Any]:
    return {"t": i18n.translator(lang), "lang": lang, "session": session, "prefix": PREFIX, "request": request,
            "csrf": session.csrf_token if session else "", "path": request.url.path}


def render(request: Request, template: str, context: dict[str, Any], *, status: int = 200,
           session: ConsoleSession | None = None, headers: dict[str, str] | None = None) -> HTMLResponse:
    """Render a template in the request's language, with the session's user and CSRF token."""
    lang = lang_of(request)
    html = _env.get_template(template).render(**_globals(request, lang, session), **context)
    return _respond(request, lang, html, status=status, headers=headers)


def _respond(request: Request, lang: i18n.Lang, html: str | bytes, *, status: int = 200,
             headers: dict[str, str] | None = None) -> HTMLResponse:
    response = HTMLResponse(html, status_code=status, headers=headers)
    secure_headers(response)
    if request.query_params.get("lang") in i18n.LANGS:
        response.set_cookie(i18n.COOKIE, lang, max_age=365 * 86400, samesite="strict", httponly=True,
                            secure=request.url.scheme == "https")
    return response


def page_cache(request: Request) -> PageCache:
    """The app's cache of rendered page content (api/console/cache.py), made by `install`."""
    cache: PageCache = request.app.state.console_cache
    return cache


# Where the cached content goes in the frame: a random per-process marker, so no text of a page (a
# user's display name in the header, say) can imitate it.
_SLOT = f"<!--mw-content-{secrets.token_hex(16)}-->"


async def render_cached(request: Request, template: str, produce: Callable[[], Awaitable[dict[str, Any]]], *,
                        session: ConsoleSession, fragment: bool = False) -> HTMLResponse:
    """A page whose content depends only on the scope, the language and the URL: its content (the
    `title` and `main` blocks; the whole template for a `fragment`) comes from the page cache, shared by
    the sessions of the same scope, and the frame around it (the signed-in person, the CSRF token) is
    rendered for this request. `produce` runs the page's queries on a miss. The caller has already
    checked that the session may see what the URL names.

    The content is cached as UTF-8 bytes and the answer is the frame's two halves joined around it as
    bytes: a province's content is 90-260 KB, and passing it through the frame's template (escape,
    Markup, the join, the encoding) copied it four times per request, a third of a cache hit's CPU."""
    lang = lang_of(request)
    key = (scope_key(session.principal), lang, template, request.url.path, request.url.query, is_htmx(request),
           fragment)

    async def content() -> tuple[str, bytes]:
        tmpl = _env.get_template(template)
        # No session while rendering shared content: nothing of one person can end up in the cache.
        variables = {**_globals(request, lang, None), "path": request.url.path, **await produce()}
        if fragment:
            return "", tmpl.render(**variables).encode()
        ctx = tmpl.new_context(variables)
        return "".join(tmpl.blocks["title"](ctx)), "".join(tmpl.blocks["main"](ctx)).encode()

    title, main = await page_cache(request).get(key, content)
    if fragment:
        return _respond(request, lang, main)
    return framed(request, session, title, (main,))


def render_part(request: Request, template: str, context: dict[str, Any], *,
                session: ConsoleSession | None = None) -> str:
    """A template's HTML in the request's language (a part of a page; with the session's CSRF token if given)."""
    return _env.get_template(template).render(**_globals(request, lang_of(request), session), **context)


def framed(request: Request, session: ConsoleSession, title: str, parts: Iterable[bytes]) -> HTMLResponse:
    """The page frame (the signed-in person, the CSRF token, the language switch) around `parts`, rendered
    HTML already encoded (from the page cache), joined as bytes; `title` is rendered HTML too."""
    lang = lang_of(request)
    frame = _env.get_template("shell.html").render(**_globals(request, lang, session),
                                                   title=Markup(title), main=Markup(_SLOT))  # noqa: S704
    head, tail = frame.split(_SLOT)
    return _respond(request, lang, b"".join((head.encode(), *parts, tail.encode())))


def secure_headers(response: Response) -> None:
    """Headers every console answer carries: no caching of scoped pages, no framing, no sniffing."""
    response.headers["Content-Security-Policy"] = CSP
    response.headers["Cache-Control"] = "no-store"
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "same-origin"


async def get_session(request: Request, state: Annotated[AppState, Depends(get_state)]) -> ConsoleSession:
    """The signed-in person; SignInRequired without a valid session cookie."""
    cookie = request.cookies.get(COOKIE)
    session = await lookup(state.pool, cookie, now=state.clock.now()) if cookie else None
    if session is None:
        raise SignInRequired
    return session


Session = Annotated[ConsoleSession, Depends(get_session)]
State = Annotated[AppState, Depends(get_state)]


async def check_csrf(request: Request, session: ConsoleSession) -> dict[str, str]:
    """The POST's form fields, once its synchronizer token (header for htmx, field for forms) matches."""
    form = await request.form()
    fields = {k: v for k, v in form.items() if isinstance(v, str)}
    presented = request.headers.get(CSRF_HEADER) or fields.get(CSRF_FIELD)
    if not session.csrf_ok(presented):
        raise CsrfFailed
    return fields


async def on_sign_in_required(request: Request, exc: Exception) -> Response:
    if is_htmx(request) or request.method != "GET":
        response: Response = Response(status_code=401, headers={"HX-Redirect": f"{PREFIX}/login"})
    else:
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        response = RedirectResponse(f"{PREFIX}/login?next={quote(target, safe='')}", status_code=303)
    secure_headers(response)
    return response


async def on_csrf_failed(request: Request, exc: Exception) -> Response:
    return render(request, "error.html", {"status": 403, "message_key": "csrf_failed", "detail": ""}, status=403)


def not_found(request: Request, session: ConsoleSession) -> HTMLResponse:
    """The one answer for a resource that does not exist and one outside the scope."""
    return render(request, "error.html", {"status": 404, "message_key": "not_found", "detail": ""},
                  status=404, session=session)


def safe_next(value: str | None) -> str:
    """A redirect target after sign-in: only a console path of this server."""
    if value and value.startswith(PREFIX + "/") and not value.startswith("//") and "\\" not in value:
        return value
    return PREFIX + "/"
