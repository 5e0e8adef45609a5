"""Console sign-in: throttled password checks, server-side sessions known by a hash, CSRF tokens."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal, cast

import asyncpg

from api.auth.principal import Principal
from api.auth.tokens import TokenRole
from api.console.users import check_password

COOKIE = "mw_session"
# A control-room shift is 8-12 h: a session lasts one, and ends sooner after 2 h without use.
LIFETIME = timedelta(hours=12)
IDLE = timedelta(hours=2)
# last_seen_at is bookkeeping: written at most once a minute, not on every poll of the mine page.
_TOUCH_EVERY = timedelta(minutes=1)
# Five wrong passwords for one user name from one address within 15 minutes lock that pair
# for the rest of the window: slow enough to stop guessing, short enough for a person who
# mistyped. Counted in the database so every API worker sees the same count.
MAX_FAILURES = 5
FAILURE_WINDOW = timedelta(minutes=15)

SignInResult = Literal["ok", "bad_credentials", "throttled"]


@dataclass(frozen=True, slots=True)
class ConsoleSession:
    """A signed-in person: the principal the API's services take, and the session's CSRF token."""

    principal: Principal
    display_name: str
    csrf_token: str

    def csrf_ok(self, presented: str | None) -> bool:
        """The synchronizer-token check of a POST."""
        return bool(presented) and hmac.compare_digest(self.csrf_token, presented or "")


def session_hash(cookie: str) -> str:
    """The stored id of a session cookie."""
    return hashlib.sha256(cookie.encode("utf-8", "surrogatepass")).hexdigest()


async def sign_in(pool: asyncpg.Pool, *, username: str, password: str, ip: str,
                  now: datetime) -> tuple[SignInResult, str | None]:
    """Check a password under the throttle; on success a new session and its cookie value."""
    async with pool.acquire() as conn:
        failures = await conn.fetchval(
            "SELECT count(*) FROM console_login_failures WHERE username = $1 AND ip = $2 AND at > $3",
            username, ip, now - FAILURE_WINDOW)
        if failures >= MAX_FAILURES:
            return "throttled", None
        row = await conn.fetchrow(
            "SELECT id, password_hash FROM console_users WHERE username = $1 AND disabled_at IS NULL", username)
    # argon2 takes ~50 ms of CPU: off the event loop, and without holding a connection.
    ok = await asyncio.to_thread(check_password, row["password_hash"] if row else None, password)
    async with pool.acquire() as conn:
        if not ok or row is None:
            await conn.execute(
                "INSERT INTO console_login_failures(username, ip, at) VALUES ($1, $2, $3)", username, ip, now)
            await conn.execute("DELETE FROM console_login_failures WHERE at < $1", now - 2 * FAILURE_WINDOW)
            return "bad_credentials", None
        cookie = secrets.token_urlsafe(32)
        async with conn.transaction():
            await conn.execute("DELETE FROM console_login_failures WHERE username = $1 AND ip = $2", username, ip)
            await conn.execute("DELETE FROM console_sessions WHERE expires_at < $1", now)
            await conn.execute(
                "INSERT INTO console_sessions(id_hash, user_id, csrf_token, created_at, last_seen_at, expires_at, ip) "
                "VALUES ($1, $2, $3, $4, $4, $5, $6)",
                session_hash(cookie), row["id"], secrets.token_urlsafe(32), now, now + LIFETIME, ip)
    return "ok", cookie


# The session, its user and, resolved through the registry, the mines in the user's scope
# (as api/auth/principal._LOOKUP does for tokens), in one round trip.
_LOOKUP = """
SELECT u.id, u.username, u.display_name, u.role, u.scope_mines, u.scope_region, s.csrf_token, s.last_seen_at,
       m.ids, m.codes
FROM console_sessions s
JOIN console_users u ON u.id = s.user_id AND u.disabled_at IS NULL
CROSS JOIN LATERAL (
    SELECT array_agg(m.id ORDER BY m.id) AS ids, array_agg(m.code ORDER BY m.id) AS codes
    FROM mines m WHERE CASE u.role
        WHEN 'mine' THEN m.code = ANY(u.scope_mines)
        WHEN 'county' THEN m.county = u.scope_region
        WHEN 'city' THEN m.city = u.scope_region
        WHEN 'province' THEN m.province = u.scope_region
        ELSE false END) m
WHERE s.id_hash = $1 AND s.expires_at > $2 AND s.last_seen_at > $3
"""


async def lookup(pool: asyncpg.Pool, cookie: str, *, now: datetime) -> ConsoleSession | None:
    """The session of a cookie, or None when unknown, expired, idle too long or its user disabled."""
    if not cookie or len(cookie) > 100 or not cookie.isascii():
        return None
    key = session_hash(cookie)
    async with pool.acquire() as conn:
        row = await conn.fetchrow(_LOOKUP, key, now, now - IDLE)
        if row is None:
            return None
        if now - row["last_seen_at"] >= _TOUCH_EVERY:
            await conn.execute("UPDATE console_sessions SET last_seen_at = $2 WHERE id_hash = $1", key, now)
    role = cast(TokenRole, row["role"])
    scope = frozenset(row["scope_mines"]) if role == "mine" else (
        frozenset({row["scope_region"]}) if row["scope_region"] else frozenset())
    principal = Principal.of(row["id"], row["username"], role, scope,
                             dict(zip(row["codes"] or (), row["ids"] or (), strict=True)))
    return ConsoleSession(principal, row["display_name"] or row["username"], row["csrf_token"])


async def sign_out(pool: asyncpg.Pool, cookie: str) -> None:
    """End the session of a cookie (nothing happens for an unknown one)."""
    await pool.execute("DELETE FROM console_sessions WHERE id_hash = $1", session_hash(cookie))
