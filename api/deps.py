"""FastAPI dependencies as `Annotated` aliases: pool, clock, cursor codec, caller, paging."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Annotated, cast

import asyncpg
from fastapi import Depends, Query, Request
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from api.auth.principal import Principal, authenticate
from api.errors import Invalid, Unauthorized
from api.pagination import CursorCodec
from api.schemas import DEFAULT_LIMIT, MAX_LIMIT
from minewatch.clock import Clock
from minewatch.settings import Settings
from rules.packs import PersonnelSettings


@dataclass(frozen=True, slots=True)
class AppState:
    """What the lifespan builds once and every request shares."""

    settings: Settings
    pool: asyncpg.Pool
    clock: Clock
    codec: CursorCodec
    # The rule pack's personnel settings (MINEWATCH_RULES_PACK, as the rules worker reads it):
    # the page shows the limit `over_capacity` judges by.
    personnel: PersonnelSettings = field(default_factory=PersonnelSettings)


# Dependencies are `async def` even when they do no IO: FastAPI runs plain `def`
# dependencies in a thread pool, a thread hop per dependency per request.
async def get_state(request: Request) -> AppState:
    return cast(AppState, request.app.state.minewatch)


State = Annotated[AppState, Depends(get_state)]


async def get_pool(state: State) -> asyncpg.Pool:
    return state.pool


async def get_clock(state: State) -> Clock:
    return state.clock


async def get_now(state: State) -> datetime:
    return state.clock.now()


async def get_codec(state: State) -> CursorCodec:
    return state.codec


Pool = Annotated[asyncpg.Pool, Depends(get_pool)]
Now = Annotated[datetime, Depends(get_now)]
Codec = Annotated[CursorCodec, Depends(get_codec)]

_bearer = HTTPBearer(auto_error=False, description="An API token: `Authorization: Bearer <token>`")


async def get_principal(
    request: Request,
    state: State,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    """The caller; 401 with a Bearer challenge when the token is missing, unknown or revoked.
    The mine and point the path names are looked up in the same round trip (`Principal.path`)."""
    if credentials is None or not credentials.credentials:
        raise Unauthorized("a bearer token is required")
    token = credentials.credentials
    if len(token) > 200 or not token.isascii() or not token.isprintable():
        raise Unauthorized("invalid bearer token")
    params = request.path_params
    principal = await authenticate(state.pool, token, pepper=state.settings.token_pepper.get_secret_value(),
                                   now=state.clock.now(), mine=params.get("mine"), point=params.get("point"))
    if principal is None:
        raise Unauthorized("invalid or revoked bearer token")
    return principal


Caller = Annotated[Principal, Depends(get_principal)]


@dataclass(frozen=True, slots=True)
class Paging:
    """`limit` and `cursor` of a list request."""

    limit: int
    cursor: str | None


async def get_paging(
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT, description="Page size")] = DEFAULT_LIMIT,
    cursor: Annotated[str | None, Query(max_length=1024, pattern=r"^[A-Za-z0-9_\-]*$",
                                        description="`next_cursor` of the previous page")] = None,
) -> Paging:
    return Paging(limit, cursor or None)


PageParams = Annotated[Paging, Depends(get_paging)]


def _query_names(dependant: Dependant) -> set[str]:
    names = {p.alias for p in dependant.query_params}
    for sub in dependant.dependencies:
        names |= _query_names(sub)
    return names


async def reject_unknown_query(request: Request) -> None:
    """422 for a query parameter the route does not declare: `?sinse=` is a typo, not a wish."""
    route = request.scope.get("route")
    if not isinstance(route, APIRoute):
        return
    # Walking the dependency tree costs microseconds; no cache to go stale across app instances.
    unknown = sorted(set(request.query_params) - _query_names(route.dependant))
    if unknown:
        raise Invalid(f"unknown query parameter(s): {', '.join(repr(u) for u in unknown)}")
