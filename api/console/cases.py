"""Console pages of cases: the board, one case, and the actions and measures a person takes on it."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from fastapi.responses import Response
from pydantic import ValidationError

from alerting.checklist import MEASURES
from api.cases import service
from api.cases.schemas import CaseActionIn
from api.console import casework, queries
from api.console.web import LOCAL, Session, State, check_csrf, is_htmx, not_found, page_cache, render, render_cached
from api.errors import ApiError, NotFound
from api.schemas import MAX_ID, is_code

router = APIRouter()
STATES = ("open", "acknowledged", "rectifying", "rectified", "verified", "closed")
LEVELS = ("mine", "county", "city", "province")


def _case_id(raw: str) -> int | None:
    return int(raw) if raw.isdigit() and 1 <= int(raw) <= MAX_ID and len(raw) < 20 else None


# Cases per page of the board: a screenful a person reads; the next ones behind a "more" link.
BOARD_ROWS = 50
_MAX_PAGE = 1000


@router.get("/cases", include_in_schema=False)
async def board(request: Request, state: State, session: Session,
                level: str | None = None, mine: str | None = None) -> Response:
    q = request.query_params
    chosen = {"state": q.get("state") if q.get("state") in STATES else "",
              "level": level if level in LEVELS else "", "mine": mine if mine and is_code(mine) else ""}
    raw_page = q.get("page") or "1"
    page = int(raw_page) if raw_page.isdigit() and 1 <= int(raw_page) <= _MAX_PAGE else 1

    async def produce() -> dict[str, Any]:
        rows = await queries.case_board(state.pool, session.principal, state.clock.now(),
                                        state=chosen["state"] or None, level=chosen["level"] or None,
                                        mine=chosen["mine"] or None, limit=BOARD_ROWS + 1,
                                        offset=(page - 1) * BOARD_ROWS)
        more = urlencode({**{k: v for k, v in chosen.items() if v}, "page": page + 1})
        return {"cases": rows[:BOARD_ROWS], "chosen": chosen, "states": STATES, "levels": LEVELS, "page": page,
                "more": more if len(rows) > BOARD_ROWS else ""}
    return await render_cached(request, "cases.html", produce, session=session)


async def _context(state: State, session: Session, case_id: int) -> dict[str, Any] | None:
    try:
        case = await service.get_case(pool=state.pool, principal=session.principal, case_id=case_id)
    except NotFound:
        return None
    found = await casework.load_view(state.pool, case_id)
    if found is None:
        return None
    now = state.clock.now()
    evidence = await queries.evidence_series(state.pool, [f.id for f in case.findings])
    return {"case": case, "offer": casework.offer(found[1], session.principal, now), "evidence": evidence,
            "measures": MEASURES, "now": now}


@router.get("/cases/{case_id}", include_in_schema=False)
async def case_page(request: Request, state: State, session: Session, case_id: str) -> Response:
    cid = _case_id(case_id)
    ctx = await _context(state, session, cid) if cid else None
    if ctx is None:
        return not_found(request, session)
    return render(request, "case.html", {**ctx, "outcome": None}, session=session)


def _deadline(value: str | None) -> datetime | None:
    """A `datetime-local` field (the mine's local time) as an aware time; None when empty."""
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=LOCAL)


async def _answer(request: Request, state: State, session: Session, case_id: int,
                  error: ApiError | None) -> Response:
    """The case again, with the outcome: htmx swaps the case body, a plain form gets the whole page.
    A refusal keeps the API's status (403 / 409 / 422) and says why."""
    ctx = await _context(state, session, case_id)
    if ctx is None:
        return not_found(request, session)
    status = error.status if error else 200
    outcome = {"ok": error is None, "status": status, "detail": error.detail if error else ""}
    template = "case_body.html" if is_htmx(request) else "case.html"
    return render(request, template, {**ctx, "outcome": outcome}, status=status, session=session)


@router.post("/cases/{case_id}/actions", include_in_schema=False)
async def act(request: Request, state: State, session: Session, case_id: str) -> Response:
    fields = await check_csrf(request, session)
    cid = _case_id(case_id)
    if cid is None:
        return not_found(request, session)
    error: ApiError | None = None
    try:
        body = CaseActionIn.model_validate({"action": fields.get("action", ""), "comment": fields.get("comment") or None,
                                            "deadline": _deadline(fields.get("deadline"))})
        try:
            await service.act(pool=state.pool, principal=session.principal, case_id=cid, body=body,
                              now=state.clock.now())
        finally:
            page_cache(request).clear()  # the next page shows the action (this process; others within the TTL)
    except ValidationError as exc:
        error = _invalid(exc)
    except NotFound:
        return not_found(request, session)
    except ApiError as exc:
        error = exc
    return await _answer(request, state, session, cid, error)


@router.post("/cases/{case_id}/measures", include_in_schema=False)
async def measure(request: Request, state: State, session: Session, case_id: str) -> Response:
    fields = await check_csrf(request, session)
    cid = _case_id(case_id)
    if cid is None:
        return not_found(request, session)
    error: ApiError | None = None
    note = (fields.get("note") or "").strip()[:4000]
    try:
        await casework.record(state.pool, principal=session.principal, case_id=cid, measure=fields.get("measure", ""),
                              note=note or None, now=state.clock.now())
        page_cache(request).clear()
    except NotFound:
        return not_found(request, session)
    except ApiError as exc:
        error = exc
    return await _answer(request, state, session, cid, error)


def _invalid(exc: ValidationError) -> ApiError:
    from api.errors import Invalid

    errors = exc.errors()
    if not errors:
        return Invalid("invalid request")
    where = ".".join(str(p) for p in errors[0]["loc"])
    return Invalid(f"{where}: {errors[0]['msg']}")
