"""The demo administrator `minewatch run` creates for an embedded installation, so the first visit
to the console has a sign-in ready. A demo credential: random per installation, kept in the data
directory (mode 0600), never a built-in password."""

from __future__ import annotations

import secrets
from datetime import datetime
from pathlib import Path

import asyncpg

from api.console.users import check_password, create_user, set_password
from minewatch.secretfile import installation_secret

DEMO_USER = "demo-admin"
PASSWORD_FILE = "demo_admin_password"  # noqa: S105 (the name of the file that holds it)


def demo_password(data: Path) -> str:
    """This installation's demo password: made once at random into `<data>/demo_admin_password`."""
    return installation_secret(data / PASSWORD_FILE, lambda: secrets.token_urlsafe(12))


async def ensure_demo_admin(dsn: str, data: Path, *, now: datetime) -> tuple[str, str]:
    """Create the demo admin (or bring its password back in line with the file); (user, password)."""
    password = demo_password(data)
    conn = await asyncpg.connect(dsn)
    try:
        stored = await conn.fetchval("SELECT password_hash FROM console_users WHERE username = $1", DEMO_USER)
        if stored is None:
            await create_user(conn, username=DEMO_USER, password=password, role="admin", scope=[], now=now,
                              display_name="Demo admin")
        elif not check_password(stored, password):
            await set_password(conn, username=DEMO_USER, password=password, now=now)
    finally:
        await conn.close()
    return DEMO_USER, password
