"""Named console users: a role and scope as API tokens have, and an argon2id password hash."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime

import asyncpg
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from asyncpg.pool import PoolConnectionProxy

from api.auth.tokens import ROLES, TokenError, TokenRole

Conn = asyncpg.Connection | PoolConnectionProxy
USERNAME = re.compile(r"^[A-Za-z0-9_.@-]{1,64}$")
# A pass phrase a person can type; shorter ones fall to guessing even through the throttle.
MIN_PASSWORD = 10
MAX_PASSWORD = 1024  # argon2 takes any length; the bound only stops a megabyte "password"

# argon2-cffi's defaults (argon2id, t=3, m=64 MiB, p=4): RFC 9106's second recommendation.
_hasher = PasswordHasher()
# Verified against when the user name is unknown, so an unknown name costs as long as a wrong password.
_DUMMY = _hasher.hash("not a password of anyone")


class UserError(TokenError):
    """A user cannot be created or changed as asked (bad name, role, scope or password)."""


@dataclass(frozen=True, slots=True)
class UserInfo:
    """A user as `minewatch user list` shows it (never the hash)."""

    id: int
    username: str
    display_name: str
    role: TokenRole
    scope: tuple[str, ...]
    created_at: datetime
    disabled_at: datetime | None


def hash_password(password: str) -> str:
    """The argon2id PHC string stored for `password`."""
    return _hasher.hash(password)


def check_password(stored: str | None, password: str) -> bool:
    """Whether `password` matches the stored hash; with no hash (unknown user) it still spends the
    time of one verification and answers False."""
    try:
        return _hasher.verify(stored or _DUMMY, password) and stored is not None
    except (VerificationError, InvalidHashError):
        return False


def password_problem(password: str) -> str | None:
    """Why a new password is unacceptable, or None."""
    if len(password) < MIN_PASSWORD:
        return f"a password needs at least {MIN_PASSWORD} characters"
    if len(password) > MAX_PASSWORD:
        return f"a password has at most {MAX_PASSWORD} characters"
    return None


async def check_scope(conn: Conn, role: str, scope: list[str]) -> tuple[list[str], str | None]:
    """(mine codes, region code) of a role's scope, checked against the registry as API tokens are."""
    if role not in ROLES:
        raise UserError(f"role must be one of {', '.join(ROLES)}, not {role!r}")
    if role == "admin":
        if scope:
            raise UserError("an admin takes no scope (it sees everything)")
        return [], None
    if role == "mine":
        if not scope:
            raise UserError("a mine user needs the mine codes it may see")
        known = {r["code"] for r in await conn.fetch("SELECT code FROM mines WHERE code = ANY($1::text[])", scope)}
        unknown = sorted(set(scope) - known)
        if unknown:
            raise UserError(f"unknown mine code(s): {', '.join(unknown)}")
        return sorted(set(scope)), None
    if len(scope) != 1:
        raise UserError(f"a {role} user needs exactly one {role} region code")
    found = await conn.fetchval(
        "SELECT EXISTS (SELECT 1 FROM regions WHERE code = $1 AND level = $2) OR EXISTS ("
        "SELECT 1 FROM mines WHERE CASE $2 WHEN 'county' THEN county = $1 "
        "WHEN 'city' THEN city = $1 ELSE province = $1 END)", scope[0], role)
    if not found:
        raise UserError(f"{scope[0]!r} is not a known {role} region code")
    return [], scope[0]


async def create_user(conn: Conn, *, username: str, password: str, role: str, scope: list[str],
                      now: datetime, display_name: str = "") -> int:
    """Store a new user; returns its id. The password is kept only as its argon2id hash."""
    if not USERNAME.fullmatch(username):
        raise UserError("a user name is 1-64 letters, digits or _ . @ -")
    problem = password_problem(password)
    if problem:
        raise UserError(problem)
    mines, region = await check_scope(conn, role, scope)
    if await conn.fetchval("SELECT EXISTS (SELECT 1 FROM console_users WHERE username = $1)", username):
        raise UserError(f"user {username!r} exists already")
    user_id: int = await conn.fetchval(
        "INSERT INTO console_users(username, display_name, password_hash, role, scope_mines, scope_region, "
        "created_at, password_changed_at) VALUES ($1,$2,$3,$4,$5::text[],$6,$7,$7) RETURNING id",
        username, display_name, hash_password(password), role, mines, region, now)
    return user_id


async def set_password(conn: Conn, *, username: str, password: str, now: datetime) -> bool:
    """Replace a user's password and end all its sessions; False when no such user."""
    problem = password_problem(password)
    if problem:
        raise UserError(problem)
    async with conn.transaction():
        user_id = await conn.fetchval(
            "UPDATE console_users SET password_hash = $2, password_changed_at = $3 WHERE username = $1 RETURNING id",
            username, hash_password(password), now)
        if user_id is None:
            return False
        await conn.execute("DELETE FROM console_sessions WHERE user_id = $1", user_id)
    return True


async def disable_user(conn: Conn, *, username: str, now: datetime) -> bool:
    """Disable a user and end its sessions; False when no active user has that name."""
    async with conn.transaction():
        user_id = await conn.fetchval(
            "UPDATE console_users SET disabled_at = $2 WHERE username = $1 AND disabled_at IS NULL RETURNING id",
            username, now)
        if user_id is None:
            return False
        await conn.execute("DELETE FROM console_sessions WHERE user_id = $1", user_id)
    return True


async def list_users(conn: Conn) -> list[UserInfo]:
    """Every user, disabled ones included, oldest first."""
    rows = await conn.fetch("SELECT id, username, display_name, role, scope_mines, scope_region, created_at, "
                            "disabled_at FROM console_users ORDER BY id")
    return [UserInfo(r["id"], r["username"], r["display_name"], r["role"],
                     tuple(r["scope_mines"]) if r["role"] == "mine" else
                     ((r["scope_region"],) if r["scope_region"] else ()), r["created_at"], r["disabled_at"])
            for r in rows]
