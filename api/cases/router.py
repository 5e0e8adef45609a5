"""Routes of the cases domain: GET /v1/cases, GET /v1/cases/{id}, POST /v1/cases/{id}/actions and /measures."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query

from api.cases import service
from api.cases.schemas import CaseActionIn, CaseDetail, CasePage, CaseStateName, LevelName, MeasureIn
from api.deps import Caller, Codec, Now, PageParams, Pool
from api.problems import READ_ERRORS, error_responses
from api.schemas import MAX_ID, Code

router = APIRouter(prefix="/v1/cases", tags=["cases"])

CaseId = Annotated[int, Path(ge=1, le=MAX_ID, description="Case id", examples=[1])]
RuleId = Annotated[str, Query(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9_.:\-]+$",
                              description="Rule id")]


@router.get("", response_model=CasePage, responses=READ_ERRORS, summary="Supervised-rectification cases")
async def list_cases(pool: Pool, codec: Codec, caller: Caller, paging: PageParams,
                     mine: Annotated[Code | None, Query(description="Mine code")] = None,
                     state: Annotated[CaseStateName | None, Query()] = None,
                     rule: RuleId | None = None,
                     level: Annotated[LevelName | None, Query()] = None) -> CasePage:
    """Cases of the mines in the caller's scope, newest first."""
    return await service.list_cases(pool=pool, codec=codec, principal=caller, limit=paging.limit,
                                    cursor=paging.cursor, mine=mine, state=state, rule=rule, level=level)


@router.get("/{case_id}", response_model=CaseDetail, responses=READ_ERRORS, summary="One case")
async def get_case(pool: Pool, caller: Caller, case_id: CaseId) -> CaseDetail:
    """A case with its findings, checklist, notifications and full history."""
    return await service.get_case(pool=pool, principal=caller, case_id=case_id)


@router.post("/{case_id}/actions", response_model=CaseDetail,
             responses=error_responses(400, 401, 403, 404, 408, 409, 413, 422, 503), summary="Act on a case")
async def act(pool: Pool, caller: Caller, now: Now, case_id: CaseId, body: CaseActionIn) -> CaseDetail:
    """Acknowledge, plan, submit (the mine's users) or verify, reject, close (the supervising
    regulator). 403: the role may not; 409: not in this state; 422: the request is incomplete."""
    return await service.act(pool=pool, principal=caller, case_id=case_id, body=body, now=now)


@router.post("/{case_id}/measures", response_model=CaseDetail,
             responses=error_responses(400, 401, 403, 404, 408, 409, 413, 422, 503), summary="Record one of the four measures")
async def record_measure(pool: Pool, caller: Caller, now: Now, case_id: CaseId, body: MeasureIn) -> CaseDetail:
    """The mine's own users record one of the four measures of a methane case (rules.md §4): who and
    when go into the checklist and the history with the comment. 403: another role; 409: not a
    methane case, or closed; 422: an unknown measure, `done_at` without an offset or in the future."""
    await service.record_measure(pool=pool, principal=caller, case_id=case_id, body=body, now=now)
    return await service.get_case(pool=pool, principal=caller, case_id=case_id)
