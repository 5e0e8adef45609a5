"""Routes of accident records: POST and GET /v1/mines/{mine}/accidents."""

from __future__ import annotations

from fastapi import APIRouter

from api.accidents import service
from api.accidents.schemas import AccidentIn, AccidentOut, AccidentPage
from api.deps import Caller, Codec, Now, PageParams, Pool
from api.mines.service import visible_mine
from api.params import MineCode
from api.problems import READ_ERRORS, error_responses

router = APIRouter(prefix="/v1/mines/{mine}", tags=["accidents"])


@router.post("/accidents", response_model=AccidentOut, status_code=201,
             responses=error_responses(400, 401, 403, 404, 408, 413, 422, 503), summary="Record an accident")
async def record(pool: Pool, caller: Caller, now: Now, mine: MineCode, body: AccidentIn) -> AccidentOut:
    """Record an accident (regulators of the mine's region and admins); the accident count rules
    read these records."""
    ref = await visible_mine(pool=pool, principal=caller, code=mine)
    return await service.record_accident(pool=pool, principal=caller, mine_id=ref.id, mine=ref.code, body=body,
                                         now=now)


@router.get("/accidents", response_model=AccidentPage, responses=READ_ERRORS, summary="Accidents of a mine")
async def list_accidents(pool: Pool, codec: Codec, caller: Caller, paging: PageParams,
                         mine: MineCode) -> AccidentPage:
    """Recorded accidents of a mine, most recent first."""
    ref = await visible_mine(pool=pool, principal=caller, code=mine)
    return await service.list_accidents(pool=pool, codec=codec, mine_id=ref.id, mine=ref.code,
                                        limit=paging.limit, cursor=paging.cursor)
