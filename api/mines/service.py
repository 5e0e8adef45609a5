"""Mines in scope, their status and summary; `visible_mine` is the 404 gate every per-mine route uses."""

from __future__ import annotations

from dataclasses import dataclass

import asyncpg

from api.auth.principal import Principal
from api.cases.service import open_cases_of
from api.errors import NotFound
from api.mines.schemas import MineDetail, MineItem, MinePage, MineStatus, RegistryCounts
from api.orders.service import active_order_of
from api.pagination import CursorCodec, paginate
from api.sql import Where

_KIND = "mines"

# Status flags per mine; each EXISTS / count is an index probe on a partial index of 0031.
_STATUS = """
m.id, m.code, m.name, m.kind, m.county, m.city, m.province,
EXISTS (SELECT 1 FROM orders o WHERE o.mine_id = m.id AND o.state <> 'lifted') AS under_order,
EXISTS (SELECT 1 FROM exceedance_events e WHERE e.mine_id = m.id AND e.end_ts IS NULL) AS open_event,
(SELECT count(*) FROM cases c WHERE c.mine_id = m.id AND c.state <> 'closed') AS open_cases
"""


@dataclass(frozen=True, slots=True)
class MineRef:
    """A mine the caller may see."""

    id: int
    code: str


async def visible_mine(*, pool: asyncpg.Pool, principal: Principal, code: str) -> MineRef:
    """The mine with this code if the caller may see it; 404 otherwise (whether or not it exists).

    Scoped callers carry their mines from the token lookup, and so does an admin the mine its
    request's path names (Principal.path); any other code costs an admin a query."""
    mine_id = principal.mines.get(code)
    if mine_id is None and principal.is_admin:
        if principal.path.mine_code == code:
            mine_id = principal.path.mine_id
        else:
            mine_id = await pool.fetchval("SELECT id FROM mines WHERE code = $1", code)
    if mine_id is None:
        raise NotFound(f"no mine {code}")
    return MineRef(mine_id, code)


def _status(r: asyncpg.Record) -> MineStatus:
    if r["under_order"]:
        return "under_order"
    if r["open_event"] or r["open_cases"]:
        return "warning"
    return "normal"


def _item(r: asyncpg.Record) -> MineItem:
    return MineItem(code=r["code"], name=r["name"], kind=r["kind"], county=r["county"], city=r["city"],
                    province=r["province"], status=_status(r), open_cases=r["open_cases"])


async def list_mines(*, pool: asyncpg.Pool, codec: CursorCodec, principal: Principal, limit: int,
                     cursor: str | None) -> MinePage:
    """The mines in the caller's scope, by code, with their current status."""
    w = Where()
    w.scope("m.id", principal)
    if cursor:
        (after,) = codec.decode(cursor, _KIND, ("str",))
        w.where(f"m.code > {w.param(after)}")
    rows = await pool.fetch(
        f"SELECT {_STATUS} FROM mines m WHERE {w.sql} ORDER BY m.code LIMIT {w.param(limit + 1)}",  # noqa: S608
        *w.args)
    page, nxt = paginate(codec, _KIND, rows, limit, lambda r: (r["code"],))
    return MinePage(items=[_item(r) for r in page], next_cursor=nxt)


async def get_mine(*, pool: asyncpg.Pool, principal: Principal, code: str) -> MineDetail:
    """One mine: registry summary, status, open cases and active order."""
    ref = await visible_mine(pool=pool, principal=principal, code=code)
    r = await pool.fetchrow(
        f"SELECT {_STATUS}, m.timezone, m.gas_class, m.approved_underground, m.shift_hours, m.active, "  # noqa: S608
        "(SELECT count(*) FROM stations s WHERE s.mine_id = m.id) AS n_stations, "
        "(SELECT count(*) FROM points p WHERE p.mine_id = m.id) AS n_points, "
        "(SELECT count(*) FROM areas a WHERE a.mine_id = m.id) AS n_areas, "
        "(SELECT count(*) FROM cards k WHERE k.mine_id = m.id) AS n_cards "
        "FROM mines m WHERE m.id = $1", ref.id)
    if r is None:
        raise NotFound(f"no mine {code}")
    return MineDetail(
        **_item(r).model_dump(), timezone=r["timezone"], gas_class=r["gas_class"],
        approved_underground=r["approved_underground"], shift_hours=r["shift_hours"], active=r["active"],
        registry=RegistryCounts(stations=r["n_stations"], points=r["n_points"], areas=r["n_areas"],
                                cards=r["n_cards"]),
        cases=await open_cases_of(pool=pool, mine_id=ref.id),
        active_order=await active_order_of(pool=pool, mine_id=ref.id, mine=code),
    )
