"""Routes of the mines domain: GET /v1/mines and GET /v1/mines/{mine}."""

from __future__ import annotations

from fastapi import APIRouter

from api.deps import Caller, Codec, PageParams, Pool
from api.mines import service
from api.mines.schemas import MineDetail, MinePage
from api.params import MineCode
from api.problems import READ_ERRORS

router = APIRouter(prefix="/v1/mines", tags=["mines"])

@router.get("", response_model=MinePage, responses=READ_ERRORS, summary="Mines in scope")
async def list_mines(pool: Pool, codec: Codec, caller: Caller, paging: PageParams) -> MinePage:
    """The mines the caller may see, with their current status (normal / warning / under_order)."""
    return await service.list_mines(pool=pool, codec=codec, principal=caller, limit=paging.limit,
                                    cursor=paging.cursor)


@router.get("/{mine}", response_model=MineDetail, responses=READ_ERRORS, summary="One mine")
async def get_mine(pool: Pool, caller: Caller, mine: MineCode) -> MineDetail:
    """Registry summary, status, open cases and the active order of one mine."""
    return await service.get_mine(pool=pool, principal=caller, code=mine)
