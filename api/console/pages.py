"""Console pages of mines: the overview of the scope, one mine live, and its exceedance history with exports."""

from __future__ import annotations

import asyncio
import csv
import io
from collections.abc import Awaitable, Callable
from datetime import datetime, time, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, Response

from api.console import queries
from api.console.cache import scope_key
from api.console.web import LOCAL, Session, State, is_htmx, not_found, page_cache, render_cached, secure_headers
from api.errors import NotFound
from api.mines.service import MineRef, visible_mine
from api.orders.service import active_order_of
from api.personnel.service import underground
from api.schemas import is_code

router = APIRouter()
GASES = ("methane", "co", "o2", "co2", "h2s")
LEVELS = ("alarm", "power_off")


async def _mine(state: State, session: Session, code: str) -> MineRef | None:
    if not is_code(code):
        return None
    try:
        return await visible_mine(pool=state.pool, principal=session.principal, code=code)
    except NotFound:
        return None


# Rows of the overview's mine table by default: every mine with a problem comes first, and a
# province's 900 mines are mostly normal; a person reads a screenful, and rendering rows costs more
# than the page's queries (`?all=1` shows them all; the map always draws every mine).
OVERVIEW_ROWS = 50
# Events on the history page: a screenful of months; older ones through the filters or the exports.
HISTORY_ROWS = 200
_STATUS_ORDER = {"under_order": 0, "warning": 1, "offline": 2, "normal": 3}


@router.get("/", include_in_schema=False)
async def overview(request: Request, state: State, session: Session,
                   show_all: Annotated[str | None, Query(alias="all")] = None) -> Response:
    async def produce() -> dict[str, Any]:
        now = state.clock.now()
        # Three independent reads on three pooled connections: the page waits for the slowest, not the sum.
        mines, by_level, cases = await asyncio.gather(
            queries.mines_in_scope(state.pool, session.principal),
            queries.open_cases_by_level(state.pool, session.principal, now),
            queries.case_board(state.pool, session.principal, now, limit=50))
        counts: dict[str, int] = {"normal": 0, "warning": 0, "under_order": 0, "offline": 0}
        for m in mines:
            counts[m.status] += 1
        # The map's points as compact arrays [longitude, latitude, status, code, name] (console.js).
        # Coordinates to 4 decimals (about 10 m): a province's scatter needs no more, and 900 mines' full
        # float digits were a fifth of the page.
        points = [[round(m.longitude, 4), round(m.latitude, 4), m.status, m.code, m.name]
                  for m in mines if m.longitude is not None and m.latitude is not None]
        # Problems first: a province's 900 mines are mostly normal.
        mines.sort(key=lambda m: (_STATUS_ORDER[m.status], m.code))
        shown = mines if show_all == "1" else mines[:OVERVIEW_ROWS]
        return {"mines": shown, "total": len(mines), "counts": counts, "by_level": by_level, "cases": cases,
                "map_points": points, "now": now}
    return await render_cached(request, "overview.html", produce, session=session)


async def _live(state: State, ref: MineRef, now: datetime) -> dict[str, Any]:
    points, people, order = await asyncio.gather(
        queries.live_points(state.pool, ref.id, now),
        underground(pool=state.pool, codec=state.codec, mine_id=ref.id, mine=ref.code, now=now, limit=1, cursor=None,
                    rules=state.personnel),
        active_order_of(pool=state.pool, mine_id=ref.id, mine=ref.code))
    return {"points": points, "people": people, "order": order, "now": now}


@router.get("/mines/{code}", include_in_schema=False)
async def mine_page(request: Request, state: State, session: Session, code: str) -> Response:
    ref = await _mine(state, session, code)  # the scope is checked before the cache is asked
    if ref is None:
        return not_found(request, session)

    async def produce() -> dict[str, Any]:
        now = state.clock.now()
        head, cases, live = await asyncio.gather(
            queries.mine_head(state.pool, ref.id),
            queries.case_board(state.pool, session.principal, now, mine=ref.code, limit=50),
            _live(state, ref, now))
        return {"mine": head, "cases": cases, **live}
    return await render_cached(request, "mine.html", produce, session=session)


@router.get("/mines/{code}/live", include_in_schema=False)
async def mine_live(request: Request, state: State, session: Session, code: str) -> Response:
    """The part of the mine page that refreshes itself (htmx polling every 5 s)."""
    ref = await _mine(state, session, code)
    if ref is None:
        return not_found(request, session)

    async def produce() -> dict[str, Any]:
        return {"mine": {"code": ref.code}, **await _live(state, ref, state.clock.now())}
    return await render_cached(request, "mine_live.html", produce, session=session, fragment=True)


def _day(value: str | None, *, end: bool = False) -> datetime | None:
    """A `YYYY-MM-DD` filter as the start of that local day (of the next one for `until`)."""
    if not value:
        return None
    try:
        day = datetime.strptime(value, "%Y-%m-%d").date()
    except ValueError:
        return None
    if end:
        day += timedelta(days=1)
    return datetime.combine(day, time(), LOCAL)


_COLUMNS = ("event", "gas", "scope", "scope_key", "level", "start", "end", "peak",
            "point", "location", "episode_start", "episode_end", "episode_peak", "episode_level")


def _rows(events: list[dict[str, Any]]) -> list[list[Any]]:
    """One row per episode (an event without episodes gets one row), times in local time."""
    def t(v: datetime | None) -> str:
        return v.astimezone(LOCAL).strftime("%Y-%m-%d %H:%M:%S") if v else ""
    out: list[list[Any]] = []
    for e in events:
        head = [e["id"], e["gas"], e["scope"], e["scope_key"], e["level"], t(e["start_ts"]), t(e["end_ts"]), e["peak"]]
        for ep in e["episodes"] or [None]:
            out.append(head + ([ep["code"], ep["location"], t(ep["start_ts"]), t(ep["end_ts"]), ep["peak"], ep["level"]]
                               if ep else ["", "", "", "", "", ""]))
    return out


def _safe_cell(value: Any) -> Any:
    """Text that a spreadsheet would run as a formula is prefixed with a quote (CSV injection)."""
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return value


@router.get("/mines/{code}/exceedances", include_in_schema=False)
async def history(request: Request, state: State, session: Session, code: str, since: str | None = None,
                  until: str | None = None, gas: str | None = None, level: str | None = None,
                  format: str | None = None) -> Response:
    ref = await _mine(state, session, code)
    if ref is None:
        return not_found(request, session)
    filters = {"since": since or "", "until": until or "", "gas": gas if gas in GASES else "",
               "level": level if level in LEVELS else ""}

    async def read(limit: int) -> list[dict[str, Any]]:
        return await queries.exceedances(state.pool, ref.id, since=_day(since), until=_day(until, end=True),
                                         gas=filters["gas"] or None, level=filters["level"] or None, limit=limit)

    if format not in ("csv", "xlsx"):
        async def produce() -> dict[str, Any]:
            head, events = await asyncio.gather(queries.mine_head(state.pool, ref.id), read(HISTORY_ROWS + 1))
            return {"mine": head, "events": events[:HISTORY_ROWS], "more": len(events) > HISTORY_ROWS,
                    "filters": filters, "gases": GASES, "levels": LEVELS, "fragment": is_htmx(request)}
        page: HTMLResponse = await render_cached(request, "history.html", produce, session=session)
        return page
    # Exports of the same scope and URL within the cache's TTL are the same file: made once.
    key = (scope_key(session.principal), "export", request.url.path, request.url.query)
    body, media, filename = await page_cache(request).get(key, lambda: _export(ref.code, format, read, state))
    response = Response(body, media_type=media, headers={"Content-Disposition": f'attachment; filename="{filename}"'})
    secure_headers(response)
    return response


async def _export(code: str, format: str, read: Callable[[int], Awaitable[list[dict[str, Any]]]],
                  state: State) -> tuple[bytes, str, str]:
    """(body, media type, file name) of an exceedance export."""
    events = await read(10_000)
    stamp = state.clock.now().astimezone(LOCAL).strftime("%Y%m%d")
    if format == "csv":
        buf = io.StringIO()
        writer = csv.writer(buf)
        writer.writerow(_COLUMNS)
        writer.writerows([[_safe_cell(v) for v in row] for row in _rows(events)])
        # A byte-order mark, so Excel opens the UTF-8 file with its Chinese intact.
        return (("\ufeff" + buf.getvalue()).encode(), "text/csv; charset=utf-8", f"exceedances_{code}_{stamp}.csv")
    from openpyxl import Workbook

    wb = Workbook(write_only=True)
    ws = wb.create_sheet(code)
    ws.append(list(_COLUMNS))
    for row in _rows(events):
        ws.append([_safe_cell(v) for v in row])
    out = io.BytesIO()
    wb.save(out)
    return (out.getvalue(), "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
            f"exceedances_{code}_{stamp}.xlsx")
