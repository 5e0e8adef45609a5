"""Routes of the orders domain: GET /v1/mines/{mine}/orders."""

from __future__ import annotations

from fastapi import APIRouter

from api.deps import Caller, Codec, PageParams, Pool
from api.mines.service import visible_mine
from api.orders import service
from api.orders.schemas import OrderPage
from api.params import MineCode
from api.problems import READ_ERRORS

router = APIRouter(prefix="/v1/mines/{mine}", tags=["orders"])


@router.get("/orders", response_model=OrderPage, responses=READ_ERRORS, summary="Shutdown orders of a mine")
async def list_orders(pool: Pool, codec: Codec, caller: Caller, paging: PageParams, mine: MineCode) -> OrderPage:
    """Shutdown orders with their trigger events, start, minimum end and state, newest first."""
    ref = await visible_mine(pool=pool, principal=caller, code=mine)
    return await service.list_orders(pool=pool, codec=codec, mine_id=ref.id, mine=ref.code,
                                     limit=paging.limit, cursor=paging.cursor)
