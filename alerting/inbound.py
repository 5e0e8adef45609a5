"""The SMS reply webhook: the provider POSTs a reply; `1 <case id>` acknowledges the case (叫应).

`POST /v1/alerting/sms/replies` with `Authorization: Bearer <shared secret>` and a JSON body
`{"from": "<phone>", "text": "<reply>", "id": "<provider message id>"}`. The secret is read
from the environment variable named by `AlertingSettings.inbound_secret_env`; while it is
unset every request is refused (503), never accepted unauthenticated.

A reply is accepted only from a number the routing file lists for the case: among the
mine's own receivers or the receivers of the level the case is raised at now. Only the
mine acknowledges (rules.md §9), so a regulator's reply is refused by the lifecycle (403).
A grouped SMS asks for `1 <first case id>`: the reply acknowledges every case of the latest
message sent to that number that carried the case.

Mount with `app.include_router(router)` and call `configure_inbound(app, ...)` in the
lifespan with an `InboundConfig` its main() built (`inbound_config(environ)`); unconfigured,
the endpoint answers 503. It never reads the environment itself.
"""

from __future__ import annotations

import hmac
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated

import asyncpg
from fastapi import APIRouter, Depends, FastAPI, Header, HTTPException, Request
from pydantic import BaseModel, ConfigDict, Field

from alerting import store
from alerting.actions import apply_action
from alerting.lifecycle import Allowed, Level, Role
from alerting.messages import parse_reply
from alerting.routing import Routing, load_routing, normalize_phone
from alerting.settings import load_alerting_settings
from minewatch.clock import Clock
from minewatch.text import MAX_ID, SafeText

router = APIRouter(prefix="/v1/alerting", tags=["alerting"])

_ROLE_OF_LEVEL = {Level.MINE: Role.MINE, Level.COUNTY: Role.COUNTY, Level.CITY: Role.CITY,
                  Level.PROVINCE: Role.PROVINCE}

_LATEST = """
SELECT n.id FROM notifications n JOIN notification_members nm ON nm.notification_id = n.id
WHERE n.channel = 'sms' AND n.target = $1 AND nm.case_id = $2 AND n.state <> 'suppressed'
ORDER BY n.created_at DESC LIMIT 1
"""


@dataclass(frozen=True, slots=True)
class InboundContext:
    """What the reply endpoint needs, built once."""

    pool: asyncpg.Pool
    clock: Clock
    routing: Routing
    secret: str | None


def configure_inbound(app: FastAPI, *, pool: asyncpg.Pool, clock: Clock, routing: Routing,
                      secret: str | None) -> None:
    """Give the mounted router its pool, clock, routing and shared secret."""
    app.state.alerting_inbound = InboundContext(pool, clock, routing, secret or None)


@dataclass(frozen=True, slots=True)
class InboundConfig:
    """What the reply endpoint needs besides the pool and the clock, built once by the
    process's main() (alerting settings' routing file and the shared secret's value)."""

    routing: Routing
    secret: str | None


def inbound_config(environ: Mapping[str, str]) -> InboundConfig:
    """The reply endpoint's configuration from the environment a main() was given."""
    settings = load_alerting_settings(environ)
    return InboundConfig(load_routing(settings.routing_path), environ.get(settings.inbound_secret_env) or None)


def _context(request: Request) -> InboundContext:
    ctx = getattr(request.app.state, "alerting_inbound", None)
    if isinstance(ctx, InboundContext):
        return ctx
    raise HTTPException(503, "the SMS reply endpoint is not configured")


Context = Annotated[InboundContext, Depends(_context)]


class SmsReply(BaseModel):
    """A reply as the provider forwards it."""

    model_config = ConfigDict(populate_by_name=True)

    # SafeText: no NUL, no lone surrogate; what PostgreSQL could not store is a 422, not a 500.
    sender: SafeText = Field(alias="from", min_length=3, max_length=32)
    text: SafeText = Field(max_length=1000)
    id: SafeText | None = Field(default=None, max_length=200)


class ReplyResult(BaseModel):
    """What came of a reply: cases acknowledged, cases left as they were (and why)."""

    status: str  # "acknowledged" | "unchanged" | "ignored"
    acknowledged: list[int] = []
    unchanged: dict[int, str] = {}
    detail: str = ""


def _authenticate(ctx: InboundContext, authorization: str | None) -> None:
    if ctx.secret is None:
        raise HTTPException(503, "the SMS reply secret is not configured")
    given = (authorization or "").removeprefix("Bearer ").strip()
    if not hmac.compare_digest(given.encode(), ctx.secret.encode()):
        raise HTTPException(401, "invalid reply credentials", headers={"WWW-Authenticate": "Bearer"})


@router.post("/sms/replies", response_model=ReplyResult, summary="SMS reply webhook (acknowledge by `1 <case id>`)")
async def sms_reply(
    reply: SmsReply, ctx: Context, authorization: Annotated[str | None, Header()] = None,
) -> ReplyResult:
    """Acknowledge the case(s) a reply names; see the module docstring for who may."""
    _authenticate(ctx, authorization)
    named = parse_reply(reply.text)
    if named is None or not named.isdigit():
        return ReplyResult(status="ignored", detail="not an acknowledgement (expected `1 <case id>`)")
    phone = normalize_phone(reply.sender)
    case_id = _case_id(named)
    if case_id is None:  # a number no case id can be (bigint): no such case, not a database error
        raise HTTPException(404, f"no case {named[:24]}{'…' if len(named) > 24 else ''}")
    now = ctx.clock.now()
    async with ctx.pool.acquire() as conn:
        case = (await store.load_cases(conn, [case_id])).get(case_id)
        if case is None:
            raise HTTPException(404, f"no case {case_id}")
        level = _sender_level(ctx.routing, case, phone)
        if level is None:
            raise HTTPException(403, f"{phone} is not registered for case {case_id}")
        targets = await _cases_of_latest(conn, phone, case_id)
        cases = await store.load_cases(conn, targets)
        result = ReplyResult(status="unchanged")
        forbidden: str | None = None
        for cid in targets:
            other = cases.get(cid)
            if other is None or _sender_level(ctx.routing, other, phone) is None:
                continue  # a number registered for one mine acknowledges nothing of another's
            role = _ROLE_OF_LEVEL[_sender_level(ctx.routing, other, phone) or Level.MINE]
            scope = frozenset({other.view.mine}) if role is Role.MINE else frozenset(
                filter(None, [other.view.regions.code(Level(role.value))]))
            outcome = await apply_action(conn, case_id=cid, action="acknowledge", actor=f"sms:{phone}", role=role,
                                         scope=scope, comment=f"SMS reply: {reply.text.strip()}"[:500],
                                         deadline=None, now=now)
            if isinstance(outcome.result, Allowed):
                result.acknowledged.append(cid)
            else:
                result.unchanged[cid] = outcome.result.detail
                if cid == case_id and outcome.result.reason == "forbidden":
                    forbidden = outcome.result.detail
    if forbidden is not None and not result.acknowledged:
        raise HTTPException(403, forbidden)
    if result.acknowledged:
        result.status = "acknowledged"
    return result


def _case_id(digits: str) -> int | None:
    """The case id `digits` (ASCII, from parse_reply) names, or None when no case can have it."""
    if len(digits) > 19:  # past bigint whatever the value; int() of a huge string costs time too
        return None
    value = int(digits)
    return value if 1 <= value <= MAX_ID else None


def _sender_level(routing: Routing, case: store.CaseRow, phone: str) -> Level | None:
    """The level the number is registered at for this case (the mine's own first), or None."""
    view = case.view
    for level in dict.fromkeys((Level.MINE, view.level)):
        for receiver in routing.receivers_for(view.mine, view.regions, level):
            if any(normalize_phone(n) == phone for n in receiver.sms):
                return level
    return None


async def _cases_of_latest(conn: store.Conn, phone: str, case_id: int) -> list[int]:
    """The named case, then every other case of the latest SMS to `phone` that carried it."""
    latest = await conn.fetchval(_LATEST, phone, case_id)
    if latest is None:
        return [case_id]
    rows = await conn.fetch("SELECT DISTINCT case_id FROM notification_members WHERE notification_id = $1 "
                            "AND case_id IS NOT NULL ORDER BY case_id", latest)
    return [case_id, *(r["case_id"] for r in rows if r["case_id"] != case_id)]
