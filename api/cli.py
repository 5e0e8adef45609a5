"""`minewatch api` (serve the HTTP API) and `minewatch tokens` (create, revoke, list API tokens)."""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from minewatch.clock import SystemClock
from minewatch.errors import MinewatchError
from minewatch.settings import Settings, require_strong_pepper

if TYPE_CHECKING:
    from fastapi import FastAPI

    from api.app import SmsReplies
    from rules.packs import PersonnelSettings


def _dsn(settings: Settings) -> str:
    if not settings.database_url:
        raise MinewatchError("DATABASE_URL is not set")
    return settings.database_url


def sms_replies(environ: Mapping[str, str]) -> SmsReplies:
    """The SMS reply webhook's configuration (routing file, shared secret) from a main()'s environment."""
    from alerting.inbound import inbound_config

    return inbound_config(environ)


def rules_personnel() -> PersonnelSettings:
    """The personnel settings of the rule pack the rules worker runs (MINEWATCH_RULES_PACK), read
    in main() like every setting: the personnel page shows the limit over_capacity judges by."""
    from rules.worker import RulesSettings, resolve_pack

    return resolve_pack(RulesSettings().pack).personnel


def app_from_environment() -> FastAPI:
    """The app of one uvicorn worker process (`minewatch api --workers N`): each worker is its own
    main(), so it builds its settings once, from the same environment the command was given."""
    from api.app import create_app

    settings = Settings()
    require_strong_pepper(settings)
    return create_app(settings, sms_replies=sms_replies(os.environ), personnel=rules_personnel())


def serve_workers(app: str, *, workers: int, host: str, port: int, **options: Any) -> None:
    """`uvicorn.run(app, factory=True, workers=N)`, with Nagle off on the connections.

    uvicorn binds the shared listening socket with protocol 0, and asyncio only sets
    TCP_NODELAY on accepted sockets whose protocol reads IPPROTO_TCP: every response then
    waits for the client's delayed ACK, ~40 ms (measured: /healthz at 440 req/s with two
    workers against 3 400 with one). The same socket, wrapped as TCP, restores it.
    """
    import uvicorn
    from uvicorn.supervisors import Multiprocess

    config = uvicorn.Config(app, factory=True, workers=workers, host=host, port=port, **options)
    bound = config.bind_socket()
    sock = socket.socket(bound.family, bound.type, socket.IPPROTO_TCP, fileno=bound.detach())
    sock.set_inheritable(True)
    Multiprocess(config, sockets=[sock]).run()


def server_options(settings: Settings) -> dict[str, Any]:
    """uvicorn options that bound what slow or numerous clients can hold (docs/operations.md):
    the h11 protocol with a deadline for request headers (api/limits.py; uvicorn has none), at
    most 16 KiB of incomplete headers, `limit_concurrency` connections + requests (then 503),
    and idle keep-alive connections closed after `api_keep_alive_s`."""
    from api.limits import HeaderDeadlineH11Protocol

    return {"http": HeaderDeadlineH11Protocol, "h11_max_incomplete_event_size": 16 * 1024,
            "limit_concurrency": settings.api_limit_concurrency,
            "timeout_keep_alive": settings.api_keep_alive_s, "proxy_headers": False}


def cmd_api(args: argparse.Namespace, settings: Settings) -> int:
    """Serve the API with uvicorn until SIGINT / SIGTERM."""
    import uvicorn

    from api.app import create_app

    _dsn(settings)
    require_strong_pepper(settings)
    host = args.host or settings.api_host
    port = args.port if args.port is not None else settings.api_port
    options: dict[str, Any] = {"log_level": "info", "access_log": args.access_log, **server_options(settings)}
    if args.workers > 1:
        # One process runs Python on one core: a busy API needs several (PostgreSQL wants cores too).
        serve_workers("api.cli:app_from_environment", workers=args.workers, host=host, port=port, **options)
    else:
        uvicorn.run(create_app(settings, sms_replies=sms_replies(os.environ), personnel=rules_personnel()), host=host,
                    port=port, **options)
    return 0


def cmd_rollup(args: argparse.Namespace, settings: Settings) -> int:
    """Refresh the hourly readings rollup (minewatch/db/rollup.py) until SIGINT / SIGTERM, or
    with --once until caught up. It lives with the API's commands because the API's whole-hour
    series are what read it."""
    from minewatch.db.rollup import Refresher
    from minewatch.worker import serve

    refresher = Refresher(_dsn(settings), clock=SystemClock())

    async def go() -> int:
        t = await serve(refresher, burst=args.once)
        if args.once:
            print(f"rollup: {t.forward_hours} hours forward, {t.backward_hours} back, {t.boxes} late boxes")
        return 0

    return asyncio.run(go())


def cmd_tokens(args: argparse.Namespace, settings: Settings) -> int:
    """Create (printing the token once), revoke or list API tokens."""
    import asyncpg

    from api.auth.tokens import create_token, list_tokens, revoke_token
    from api.errors import ApiError

    dsn = _dsn(settings)
    if args.tokens_cmd == "create":
        require_strong_pepper(settings)  # a token hashed with a known pepper is crackable offline
    now = SystemClock().now()

    async def go() -> int:
        conn = await asyncpg.connect(dsn)
        try:
            if args.tokens_cmd == "create":
                scope = [s for part in args.scope for s in part.split(",") if s]
                try:
                    token_id, token = await create_token(
                        conn, name=args.name, role=args.role, scope=scope,
                        pepper=settings.token_pepper.get_secret_value(), now=now)
                except ApiError as exc:
                    raise MinewatchError(str(exc)) from exc
                print(f"token {token_id} ({args.role}, {', '.join(scope) or 'all mines'}) for {args.name}:")
                print(token)
                print("Store it now: it is not stored and cannot be shown again.")
                return 0
            if args.tokens_cmd == "revoke":
                if not await revoke_token(conn, token_id=args.id, now=now):
                    raise MinewatchError(f"no active token with id {args.id}")
                print(f"token {args.id} revoked")
                return 0
            for t in await list_tokens(conn):
                state = f"revoked {t.revoked_at:%Y-%m-%d %H:%M}" if t.revoked_at else "active"
                used = f"{t.last_used_at:%Y-%m-%d %H:%M}" if t.last_used_at else "never"
                print(f"{t.id:>5}  {t.role:<8}  {','.join(t.scope) or '*':<28}  {state:<24}  last used {used}  "
                      f"{t.name}")
            return 0
        finally:
            await conn.close()

    return asyncio.run(go())


def add_commands(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add the `api` and `tokens` subcommands to the `minewatch` parser."""
    a = sub.add_parser("api", help="serve the HTTP API (uvicorn)")
    a.add_argument("--host", default=None, help="listen address (default MINEWATCH_API_HOST, 127.0.0.1)")
    a.add_argument("--port", type=int, default=None, help="listen port (default MINEWATCH_API_PORT, 8080)")
    a.add_argument("--access-log", action="store_true", help="log every request")
    a.add_argument("--workers", type=int, default=1,
                   help="uvicorn worker processes (default 1; about one per core PostgreSQL leaves free)")
    a.set_defaults(func=cmd_api)

    ro = sub.add_parser("rollup", help="refresh the hourly readings rollup (plain PostgreSQL; idles on TimescaleDB)")
    ro.add_argument("--once", action="store_true", help="catch up, then exit")
    ro.set_defaults(func=cmd_rollup)

    t = sub.add_parser("tokens", help="API tokens: create, revoke, list")
    ts = t.add_subparsers(dest="tokens_cmd", required=True)
    c = ts.add_parser("create", help="create a token and print it once")
    c.add_argument("--role", required=True, choices=["mine", "county", "city", "province", "admin"])
    c.add_argument("--scope", action="append", default=[],
                   help="mine code(s) for role mine (repeat or comma-separate), the region code for "
                        "county / city / province; none for admin")
    c.add_argument("--name", required=True, help="who or what uses the token")
    c.set_defaults(func=cmd_tokens)
    r = ts.add_parser("revoke", help="revoke a token by id")
    r.add_argument("id", type=int)
    r.set_defaults(func=cmd_tokens)
    lst = ts.add_parser("list", help="list tokens (never the tokens themselves)")
    lst.set_defaults(func=cmd_tokens)

    from api.console.cli import add_commands as add_console_commands

    add_console_commands(sub)  # `minewatch user ...`: the console's people
