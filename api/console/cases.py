"""Console pages of cases: the board, one case, and the actions and measures a person takes on it."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from fastapi.responses import Response
from markupsafe import escape
from pydantic import ValidationError

from alerting.checklist import MEASURES
from alerting.lifecycle import CaseView
from api.cases import service
from api.cases.schemas import CaseActionIn, CaseDetail
from api.console import casework, i18n, queries
from api.console.cache import scope_key
from api.console.web import (
    LOCAL,
    Session,
    State,
    check_csrf,
    framed,
    is_htmx,
    lang_of,
    not_found,
    page_cache,
    render,
    render_cached,
    render_part,
)
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
    found, evidence = await _view_and_evidence(state, case)
    if found is None:
        return None
    now = state.clock.now()
    return {"case": case, "offer": casework.offer(found[1], session.principal, now), "evidence": evidence,
            "measures": MEASURES, "now": now}


async def _view_and_evidence(state: State, case: CaseDetail) -> tuple[tuple[int, CaseView] | None,
                                                                      dict[int, list[dict[str, Any]]]]:
    """The lifecycle's view of a visible case and its findings' evidence series, read concurrently."""
    view, evidence = await asyncio.gather(casework.load_view(state.pool, case.id),
                                          queries.evidence_series(state.pool, [f.id for f in case.findings]))
    return view, evidence


@dataclass(frozen=True, slots=True)
class _Shared:
    """What every session of one scope sees of a case, rendered (title line, findings with their evidence,
    history, notifications), and what the actions offered to each person are asked from."""

    mine_id: int
    title: str
    head: bytes
    record: bytes
    case: CaseDetail
    view: CaseView


async def _shared(request: Request, state: State, session: Session, case_id: int) -> _Shared:
    """A case's shared part; NotFound when the session's scope does not see it (nothing is cached then)."""
    case = await service.get_case(pool=state.pool, principal=session.principal, case_id=case_id)
    found, evidence = await _view_and_evidence(state, case)
    if found is None:
        raise NotFound(f"no case {case_id}")
    context = {"case": case, "evidence": evidence, "measures": MEASURES}
    title = str(escape(f"{i18n.translator(lang_of(request))('case')} {case.id}"))
    return _Shared(found[0], title, render_part(request, "case_head.html", context).encode(),
                   render_part(request, "case_record.html", context).encode(), case, found[1])


@router.get("/cases/{case_id}", include_in_schema=False)
async def case_page(request: Request, state: State, session: Session, case_id: str) -> Response:
    """One case. Its record comes from the page cache, shared by the sessions of the same scope (read,
    and so the scope checked, by the first of them); the actions offered are asked of the lifecycle for
    this person on every request and rendered with this session's CSRF token."""
    cid = _case_id(case_id)
    if cid is None:
        return not_found(request, session)
    key = (scope_key(session.principal), lang_of(request), "case", cid)
    try:
        shared: _Shared = await page_cache(request).get(key, lambda: _shared(request, state, session, cid))
    except NotFound:
        return not_found(request, session)
    if not session.principal.sees(shared.mine_id):  # implied by the key's scope; checked all the same
        return not_found(request, session)
    offer = casework.offer(shared.view, session.principal, state.clock.now())
    actions = render_part(request, "case_actions.html", {"case": shared.case, "offer": offer}, session=session)
    return framed(request, session, shared.title,
                  (b'<div id="case-body">\n', shared.head, actions.encode(), shared.record, b"</div>\n"))


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
