"""Routes of the findings domain: GET /v1/mines/{mine}/findings."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from api.deps import Caller, Codec, PageParams, Pool
from api.errors import Invalid
from api.findings import service
from api.findings.schemas import FindingPage
from api.mines.service import visible_mine
from api.params import MineCode, Since, Until
from api.problems import READ_ERRORS
from minewatch import rule_ids

router = APIRouter(prefix="/v1/mines/{mine}", tags=["findings"])

Rule = Annotated[str | None, Query(min_length=1, max_length=40, pattern=r"^[a-z0-9_]+$",
                                   description="A rule id of the contract, e.g. methane_exceedance, offline",
                                   examples=["methane_exceedance"])]
OpenOnly = Annotated[bool | None, Query(alias="open", description="true: only findings without an end; "
                                                                  "false: only those with one")]


@router.get("/findings", response_model=FindingPage, responses=READ_ERRORS, summary="Findings of a mine")
async def list_findings(pool: Pool, codec: Codec, caller: Caller, paging: PageParams, mine: MineCode,
                        rule: Rule = None, since: Since = None, until: Until = None,
                        open_only: OpenOnly = None) -> FindingPage:
    """Every finding of the mine (all rule families) that started in [since, until), newest first."""
    if rule is not None and not rule_ids.is_known(rule):
        raise Invalid(f"rule {rule!r} is not a rule id; one of: {', '.join(sorted(rule_ids.KNOWN))}")
    ref = await visible_mine(pool=pool, principal=caller, code=mine)
    return await service.list_findings(pool=pool, codec=codec, mine_id=ref.id, mine=ref.code, rule=rule,
                                       since=since, until=until, open_only=open_only, limit=paging.limit,
                                       cursor=paging.cursor)
