"""The FastAPI application: `create_app(settings)` wires routers, errors, metrics and the pool's lifespan."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import asyncpg
from fastapi import Depends, FastAPI
from prometheus_client import CollectorRegistry

from alerting.inbound import InboundConfig, configure_inbound
from alerting.inbound import router as sms_reply_router
from api.accidents.router import router as accidents_router
from api.cases.router import router as cases_router
from api.console import install as install_console
from api.deadletters.router import router as deadletters_router
from api.deps import AppState, reject_unknown_query
from api.errors import ApiError
from api.exceedances.router import router as exceedances_router
from api.findings.router import router as findings_router
from api.limits import RequestLimitsMiddleware
from api.metrics import ApiMetrics, MetricsMiddleware
from api.mines.router import router as mines_router
from api.ops.router import router as ops_router
from api.orders.router import router as orders_router
from api.pagination import CursorCodec
from api.personnel.router import router as personnel_router
from api.problems import error_responses
from api.problems import install as install_problems
from api.readings.router import router as readings_router
from minewatch.clock import Clock, SystemClock
from minewatch.db import create_pool
from minewatch.settings import Settings
from rules.packs import PersonnelSettings

API_VERSION = "1.0.0"


async def _skip_session_reset(conn: asyncpg.Connection) -> None:
    """Release without asyncpg's reset query (a round trip per release, several per request).

    The API leaves nothing in the session to reset: no LISTEN, no advisory locks, no cursors
    outside transactions, and settings only with SET LOCAL; asyncpg still rolls back any open
    transaction on release.
    """


def _session_setup(statement_timeout_s: float) -> Callable[[asyncpg.Connection], Awaitable[None]]:
    """Session settings of the API's connections: no JIT; floats rendered as text in their
    shortest exact form (pages PostgreSQL renders, api/readings), whatever the server's default;
    the statement time limit (settings.api_statement_timeout_s).

    The API's statements are short, but the planner prices some far above jit_above_cost (it
    cannot know that a 30-day multirange holds one or two ranges, or how few buckets date_bin
    makes) and PostgreSQL then spends 100-200 ms compiling a query that runs in 4 ms.
    """
    limit = f"{max(1, round(statement_timeout_s * 1000))}ms"

    async def init(conn: asyncpg.Connection) -> None:
        await conn.execute("SET jit = off; SET extra_float_digits = 1")
        await conn.execute("SELECT set_config('statement_timeout', $1, false)", limit)

    return init


SmsReplies = InboundConfig


def create_app(settings: Settings, *, pool: asyncpg.Pool | None = None, clock: Clock | None = None,
               registry: CollectorRegistry | None = None, sms_replies: SmsReplies | None = None,
               personnel: PersonnelSettings | None = None) -> FastAPI:
    """Build the API. The pool is created in the lifespan from `settings.database_url` unless one is
    passed (then the caller owns and closes it); `registry` collects the request metrics;
    `sms_replies` configures the SMS provider's reply webhook (503 without it); `personnel`: the
    rule pack's personnel settings (the national bounds of a mine's limit; default: the default
    pack's), which the mains read from MINEWATCH_RULES_PACK as the rules worker does."""
    metrics = ApiMetrics(registry or CollectorRegistry())

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        own = pool is None
        if pool is not None:
            the_pool = pool
        else:
            if not settings.database_url:
                raise ApiError("DATABASE_URL is not set")
            # settings.api_pool_size: why small is fast, in minewatch/settings.py
            size = settings.api_pool_size
            the_pool = await create_pool(settings.database_url, min_size=min(2, size), max_size=size,
                                         application_name="minewatch-api", reset=_skip_session_reset,
                                         init=_session_setup(settings.api_statement_timeout_s))
        try:
            app.state.minewatch = AppState(
                settings=settings, pool=the_pool, clock=clock or SystemClock(),
                codec=CursorCodec(settings.token_pepper.get_secret_value().encode()),
                personnel=personnel or PersonnelSettings())
            if sms_replies is not None:
                configure_inbound(app, pool=the_pool, clock=app.state.minewatch.clock, routing=sms_replies.routing,
                                  secret=sms_replies.secret)
            yield
        finally:
            if own:
                await the_pool.close()

    app = FastAPI(
        title="Minewatch API", version=API_VERSION, lifespan=lifespan,
        docs_url=None, redoc_url=None,  # served from vendored files by api/console (no CDN)
        description="Mine monitoring and early warning: mines, exceedances, orders, readings, personnel, "
                    "supervised-rectification cases. Errors are application/problem+json (RFC 9457).",
    )
    app.state.metrics = metrics
    install_problems(app)
    for router in (mines_router, exceedances_router, findings_router, orders_router, readings_router, personnel_router,
                   accidents_router, cases_router, deadletters_router):
        app.include_router(router, dependencies=[Depends(reject_unknown_query)])
    # the SMS provider's reply webhook: its own shared-secret auth, not an API token
    app.include_router(sms_reply_router, dependencies=[Depends(reject_unknown_query)],
                       responses=error_responses(400, 401, 403, 404, 408, 413, 422, 503))
    app.include_router(ops_router)  # probes and scrapers: no auth, no strictness about extra parameters
    # the web console for people under /console/, `/` and the local /docs
    install_console(app, cache_ttl_s=settings.console_cache_ttl_s)
    # Inside the metrics middleware, so refused requests are counted too.
    app.add_middleware(RequestLimitsMiddleware, max_body_bytes=settings.api_max_body_bytes,
                       body_timeout_s=settings.api_body_timeout_s)
    app.add_middleware(MetricsMiddleware, metrics=metrics)
    return app
