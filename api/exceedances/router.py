"""Routes of the exceedances domain: GET /v1/mines/{mine}/exceedances."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response

from api.deps import Caller, Codec, PageParams, Pool
from api.exceedances import service
from api.exceedances.schemas import ExceedanceLevel, ExceedancePage
from api.mines.service import visible_mine
from api.params import MineCode, Since, Until
from api.problems import READ_ERRORS

router = APIRouter(prefix="/v1/mines/{mine}", tags=["exceedances"])

Gas = Annotated[str | None, Query(min_length=1, max_length=40, pattern=r"^[a-z0-9_]+$",
                                  description="Gas / quantity, e.g. methane", examples=["methane"])]


@router.get("/exceedances", response_model=ExceedancePage, responses=READ_ERRORS,
            summary="Exceedance events of a mine")
async def list_exceedances(pool: Pool, codec: Codec, caller: Caller, paging: PageParams, mine: MineCode,
                           since: Since = None, until: Until = None, gas: Gas = None,
                           level: Annotated[ExceedanceLevel | None, Query()] = None) -> Response:
    """Events that started in [since, until), newest first, each with its episodes."""
    ref = await visible_mine(pool=pool, principal=caller, code=mine)
    return await service.list_exceedances(pool=pool, codec=codec, mine_id=ref.id, since=since,
                                          until=until, gas=gas, level=level, limit=paging.limit,
                                          cursor=paging.cursor)
