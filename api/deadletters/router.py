"""Routes of the dead-letters domain: GET /v1/dead-letters and GET /v1/dead-letters/{id}."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query

from api.deadletters import service
from api.deadletters.schemas import DeadLetterDetail, DeadLetterPage
from api.deps import Caller, Codec, PageParams, Pool
from api.params import Since
from api.problems import READ_ERRORS
from api.schemas import MAX_ID, Code

router = APIRouter(prefix="/v1/dead-letters", tags=["dead-letters"])

DeadLetterId = Annotated[int, Path(ge=1, le=MAX_ID, description="Dead letter id", examples=[1])]


@router.get("", response_model=DeadLetterPage, responses=READ_ERRORS, summary="Rejected input")
async def list_dead_letters(pool: Pool, codec: Codec, caller: Caller, paging: PageParams, since: Since = None,
                            mine: Annotated[Code | None, Query(description="Mine code")] = None,
                            reason: Annotated[str | None, Query(max_length=100, pattern=r"^[A-Za-z0-9_.:\-]+$",
                                                                description="Rejection reason")] = None,
                            ) -> DeadLetterPage:
    """Input that could not be accepted, with the reason, newest first. Dead letters that name no
    (known) mine are visible to admins only. Each item carries the first 1 000 characters of its
    payload (`payload_truncated` says whether there is more, `payload_bytes` how much arrived) and
    `href`, the whole item."""
    return await service.list_dead_letters(pool=pool, codec=codec, principal=caller, since=since, mine=mine,
                                           reason=reason, limit=paging.limit, cursor=paging.cursor)


@router.get("/{dead_letter_id}", response_model=DeadLetterDetail, responses=READ_ERRORS,
            summary="One dead letter, whole")
async def get_dead_letter(pool: Pool, caller: Caller, dead_letter_id: DeadLetterId) -> DeadLetterDetail:
    """One dead letter with the whole payload the store kept (up to 1 MiB) and, when the text is a
    repair of what arrived (invalid UTF-8, NUL), the original bytes in base64. Scoped like the list:
    404 outside the caller's mines."""
    return await service.get_dead_letter(pool=pool, principal=caller, dead_letter_id=dead_letter_id)
