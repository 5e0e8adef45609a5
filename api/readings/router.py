"""Routes of the readings domain: GET /v1/mines/{mine}/points/{point}/readings."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Response

from api.deps import Caller, Codec, Now, PageParams, Pool
from api.mines.service import visible_mine
from api.params import MineCode, Since, Until
from api.problems import READ_ERRORS
from api.readings import service
from api.readings.schemas import SeriesPage
from api.schemas import Code

router = APIRouter(prefix="/v1/mines/{mine}/points/{point}", tags=["readings"])

PointCode = Annotated[Code, Path(description="Point code", examples=["140100000001_01MN0001_T0003"])]
Step = Annotated[str | None, Query(max_length=8, pattern=service.STEP_PATTERN,
                                   description="Bucket width (1m, 5m, 15m, 1h, 1d, ...); absent: raw",
                                   examples=["1h"])]


@router.get("/readings", response_model=SeriesPage, responses=READ_ERRORS, summary="Readings of a point")
async def readings(pool: Pool, codec: Codec, caller: Caller, now: Now, paging: PageParams,
                   mine: MineCode, point: PointCode, since: Since = None, until: Until = None,
                   step: Step = None) -> Response:
    """Raw readings (range at most 7 days), or buckets with min / max / avg / last and the count.
    Defaults: until = now, since = until - 24 h. Buckets start at multiples of the step from
    2000-01-01T00:00Z (so 1d buckets are UTC days)."""
    ref = await visible_mine(pool=pool, principal=caller, code=mine)
    p = await service.find_point(pool=pool, mine_id=ref.id, code=point, path=caller.path)
    lo, hi = service.time_range(since, until, now)
    if step is None:
        return await service.raw_series(pool=pool, codec=codec, mine=ref.code, point=p, since=lo, until=hi,
                                        limit=paging.limit, cursor=paging.cursor)
    return await service.bucket_series(pool=pool, codec=codec, mine=ref.code, point=p, since=lo, until=hi,
                                       step=step, limit=paging.limit, cursor=paging.cursor)
