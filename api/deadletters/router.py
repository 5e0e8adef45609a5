"""Routes of the dead-letters domain: GET /v1/dead-letters."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from api.deadletters import service
from api.deadletters.schemas import DeadLetterPage
from api.deps import Caller, Codec, PageParams, Pool
from api.params import Since
from api.problems import READ_ERRORS
from api.schemas import Code

router = APIRouter(prefix="/v1/dead-letters", tags=["dead-letters"])


@router.get("", response_model=DeadLetterPage, responses=READ_ERRORS, summary="Rejected input")
async def list_dead_letters(pool: Pool, codec: Codec, caller: Caller, paging: PageParams, since: Since = None,
                            mine: Annotated[Code | None, Query(description="Mine code")] = None,
                            reason: Annotated[str | None, Query(max_length=100, pattern=r"^[A-Za-z0-9_.:\-]+$",
                                                                description="Rejection reason")] = None,
                            ) -> DeadLetterPage:
    """Input that could not be accepted, with the reason, newest first. Dead letters that name no
    (known) mine are visible to admins only."""
    return await service.list_dead_letters(pool=pool, codec=codec, principal=caller, since=since, mine=mine,
                                           reason=reason, limit=paging.limit, cursor=paging.cursor)
