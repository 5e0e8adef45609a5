"""Admission for the embedded amqtt broker: every client in, none of them 'anonymous'.

amqtt's own AnonymousAuthPlugin marks every session it admits as anonymous,
and amqtt then treats an anonymous persistent session as a clean one: it
deletes the session when the client goes away and queues nothing for it, so
an ingest that reconnects finds no session and has missed everything
published meanwhile. The embedded broker listens on 127.0.0.1 only, for this
machine's own processes; admitting everyone is what allow_anonymous did too.
"""

from __future__ import annotations

from dataclasses import dataclass

from amqtt.plugins.base import BaseAuthPlugin
from amqtt.session import Session


class SessionKeepingAuth(BaseAuthPlugin):  # type: ignore[misc]
    """Admit every client and keep its session when it asks for one (clean session 0)."""

    @dataclass
    class Config:
        """No options (amqtt builds each plugin's configuration from this dataclass)."""

    async def authenticate(self, *, session: Session) -> bool:
        session.is_anonymous = False
        return True
