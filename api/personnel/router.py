"""Routes of the personnel domain: GET /v1/mines/{mine}/personnel."""

from __future__ import annotations

from fastapi import APIRouter

from api.deps import Caller, Codec, Now, PageParams, Pool, State
from api.mines.service import visible_mine
from api.params import MineCode
from api.personnel import service
from api.personnel.schemas import PersonnelOut
from api.problems import READ_ERRORS

router = APIRouter(prefix="/v1/mines/{mine}", tags=["personnel"])


@router.get("/personnel", response_model=PersonnelOut, responses=READ_ERRORS, summary="Who is underground now")
async def personnel(pool: Pool, codec: Codec, caller: Caller, now: Now, paging: PageParams, state: State,
                    mine: MineCode) -> PersonnelOut:
    """Cards underground now (by card code, paginated) and head counts by area against the approved
    limits, by rules.md §7's presence model: a card is underground when its latest read is at a
    station of the workings (not a shaft), however long ago; see docs/api.md."""
    ref = await visible_mine(pool=pool, principal=caller, code=mine)
    return await service.underground(pool=pool, codec=codec, mine_id=ref.id, mine=ref.code, now=now,
                                     limit=paging.limit, cursor=paging.cursor, rules=state.personnel)
