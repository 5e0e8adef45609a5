"""API tokens: generated once, stored only as an HMAC-SHA256 with the server's pepper."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Literal, cast, get_args

import asyncpg
from asyncpg.pool import PoolConnectionProxy

from api.errors import ApiError

Conn = asyncpg.Connection | PoolConnectionProxy
TokenRole = Literal["mine", "county", "city", "province", "admin"]
ROLES: tuple[TokenRole, ...] = get_args(TokenRole)
REGION_ROLES: tuple[TokenRole, ...] = ("county", "city", "province")

_PREFIX = "mwt_"
# 32 random bytes: guessing is hopeless, and the keyed hash makes a stolen table useless
# without the pepper.
_RANDOM_BYTES = 32


class TokenError(ApiError):
    """A token cannot be created as asked (unknown role, scope that names nothing)."""

    status, slug, title = 422, "validation", "Invalid token request"


@dataclass(frozen=True, slots=True)
class TokenInfo:
    """A stored token as `tokens list` shows it (never the token itself)."""

    id: int
    name: str
    role: TokenRole
    scope: tuple[str, ...]
    created_at: datetime
    revoked_at: datetime | None
    last_used_at: datetime | None


def generate_token() -> str:
    """A new random bearer token."""
    return _PREFIX + secrets.token_urlsafe(_RANDOM_BYTES)


def hash_token(token: str, pepper: str) -> str:
    """The keyed hash stored in `api_tokens.token_hash`."""
    return hmac.new(pepper.encode(), token.encode("utf-8", "surrogatepass"), hashlib.sha256).hexdigest()


async def create_token(conn: Conn, *, name: str, role: str, scope: list[str],
                       pepper: str, now: datetime) -> tuple[int, str]:
    """Store a new token; returns its id and the token, which is shown this once only."""
    if role not in ROLES:
        raise TokenError(f"role must be one of {', '.join(ROLES)}, not {role!r}")
    if not name.strip():
        raise TokenError("a token needs a name (who or what uses it)")
    mines: list[str] = []
    region: str | None = None
    if role == "admin":
        if scope:
            raise TokenError("an admin token takes no scope (it sees everything)")
    elif role == "mine":
        if not scope:
            raise TokenError("a mine token needs the mine codes it may see")
        known = {r["code"] for r in await conn.fetch(
            "SELECT code FROM mines WHERE code = ANY($1::text[])", scope)}
        unknown = sorted(set(scope) - known)
        if unknown:
            raise TokenError(f"unknown mine code(s): {', '.join(unknown)}")
        mines = sorted(set(scope))
    else:
        if len(scope) != 1:
            raise TokenError(f"a {role} token needs exactly one {role} region code")
        region = scope[0]
        # The region must be known at that level, from the regions table or the mines in it.
        found = await conn.fetchval(
            "SELECT EXISTS (SELECT 1 FROM regions WHERE code = $1 AND level = $2) OR EXISTS ("
            "SELECT 1 FROM mines WHERE CASE $2 WHEN 'county' THEN county = $1 "
            "WHEN 'city' THEN city = $1 ELSE province = $1 END)", region, role)
        if not found:
            raise TokenError(f"{region!r} is not a known {role} region code")
    token = generate_token()
    token_id: int = await conn.fetchval(
        "INSERT INTO api_tokens(name, token_hash, role, scope_mines, scope_region, created_at) "
        "VALUES ($1, $2, $3, $4::text[], $5, $6) RETURNING id",
        name, hash_token(token, pepper), role, mines, region, now)
    return token_id, token


async def revoke_token(conn: Conn, *, token_id: int, now: datetime) -> bool:
    """Revoke a token; False when no active token has that id."""
    row = await conn.fetchval(
        "UPDATE api_tokens SET revoked_at = $2 WHERE id = $1 AND revoked_at IS NULL RETURNING id",
        token_id, now)
    return row is not None


async def list_tokens(conn: Conn) -> list[TokenInfo]:
    """Every token, revoked ones included, oldest first."""
    rows = await conn.fetch(
        "SELECT id, name, role, scope_mines, scope_region, created_at, revoked_at, last_used_at "
        "FROM api_tokens ORDER BY id")
    return [TokenInfo(r["id"], r["name"], cast(TokenRole, r["role"]),
                      tuple(r["scope_mines"]) if r["role"] == "mine" else
                      ((r["scope_region"],) if r["scope_region"] else ()),
                      r["created_at"], r["revoked_at"], r["last_used_at"]) for r in rows]
