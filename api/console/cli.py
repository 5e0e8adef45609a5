"""`minewatch user add|passwd|disable|list`: the people who sign in to the web console."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import sys

from minewatch.clock import SystemClock
from minewatch.errors import MinewatchError
from minewatch.settings import Settings


def _password(args: argparse.Namespace) -> str:
    """The new password: a line of stdin with --password-stdin, else asked twice on the terminal.
    Never an argument (it would sit in the shell history and in `ps`)."""
    if args.password_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    if not sys.stdin.isatty():
        raise MinewatchError("no terminal to ask for the password: pipe it with --password-stdin")
    first = getpass.getpass("password: ")
    if getpass.getpass("again: ") != first:
        raise MinewatchError("the two passwords differ")
    return first


def cmd_user(args: argparse.Namespace, settings: Settings) -> int:
    """Add, change the password of, disable or list console users."""
    import asyncpg

    from api.console.users import UserError, create_user, disable_user, list_users, set_password

    if not settings.database_url:
        raise MinewatchError("DATABASE_URL is not set (`minewatch run` prints the value for its embedded database)")
    dsn = settings.database_url
    now = SystemClock().now()
    password = _password(args) if args.user_cmd in ("add", "passwd") else ""

    async def go() -> int:
        conn = await asyncpg.connect(dsn)
        try:
            if args.user_cmd == "add":
                scope = [s for part in args.scope for s in part.split(",") if s]
                try:
                    uid = await create_user(conn, username=args.username, password=password, role=args.role,
                                            scope=scope, now=now, display_name=args.name or "")
                except UserError as exc:
                    raise MinewatchError(str(exc)) from exc
                print(f"user {uid} {args.username} ({args.role}, {', '.join(scope) or 'all mines'}) added")
                return 0
            if args.user_cmd == "passwd":
                try:
                    changed = await set_password(conn, username=args.username, password=password, now=now)
                except UserError as exc:
                    raise MinewatchError(str(exc)) from exc
                if not changed:
                    raise MinewatchError(f"no user {args.username}")
                print(f"password of {args.username} changed; its sessions are ended")
                return 0
            if args.user_cmd == "disable":
                if not await disable_user(conn, username=args.username, now=now):
                    raise MinewatchError(f"no active user {args.username}")
                print(f"user {args.username} disabled; its sessions are ended")
                return 0
            for u in await list_users(conn):
                state = f"disabled {u.disabled_at:%Y-%m-%d %H:%M}" if u.disabled_at else "active"
                print(f"{u.id:>5}  {u.username:<20}  {u.role:<8}  {','.join(u.scope) or '*':<28}  {state:<24}  "
                      f"{u.display_name}")
            return 0
        finally:
            await conn.close()

    return asyncio.run(go())


def add_commands(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add the `user` subcommand to the `minewatch` parser."""
    u = sub.add_parser("user", help="web console users: add, passwd, disable, list")
    us = u.add_subparsers(dest="user_cmd", required=True)
    a = us.add_parser("add", help="add a user (asks for the password, or reads it with --password-stdin)")
    a.add_argument("username", help="the sign-in name: letters, digits, _ . @ -")
    a.add_argument("--role", required=True, choices=["mine", "county", "city", "province", "admin"])
    a.add_argument("--scope", action="append", default=[],
                   help="mine code(s) for role mine (repeat or comma-separate), the region code for "
                        "county / city / province; none for admin")
    a.add_argument("--name", default="", help="the person's name as the console shows it")
    a.add_argument("--password-stdin", action="store_true", help="read the password from the first line of stdin")
    a.set_defaults(func=cmd_user)
    p = us.add_parser("passwd", help="set a new password (ends the user's sessions)")
    p.add_argument("username")
    p.add_argument("--password-stdin", action="store_true", help="read the password from the first line of stdin")
    p.set_defaults(func=cmd_user)
    d = us.add_parser("disable", help="disable a user (ends its sessions)")
    d.add_argument("username")
    d.set_defaults(func=cmd_user)
    lst = us.add_parser("list", help="list users (never their passwords)")
    lst.set_defaults(func=cmd_user)
