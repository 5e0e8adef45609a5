"""Case actions from the console: which ones the signed-in person may take now, and recording a measure.

Both ask the lifecycle's pure decisions (`alerting.lifecycle.transition`, `record_measure`),
and actions and measures are applied by the API's own case service, so the console offers exactly
what the API would accept and refuses with the API's reasons."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import asyncpg
from asyncpg.pool import PoolConnectionProxy
from pydantic import ValidationError

from alerting.actions import WITHDRAWN_SQL, case_view
from alerting.checklist import Measure
from alerting.lifecycle import Action, Allowed, CaseView, Refused, record_measure, transition
from api.auth.principal import Principal
from api.cases import service as cases_service
from api.cases.schemas import MeasureIn
from api.errors import Invalid

# The columns alerting.actions.case_view reads (those of its own locking query).
_CASE = """
SELECT c.id, c.mine_id, c.rule, c.level, c.severity, c.state, c.opened_at, c.level_since, c.deadline,
       c.last_reminder_at, c.checklist, c.order_id, COALESCE(c.order_min_end, o.min_end_ts) AS order_min_end,
       m.code AS mine, m.county, m.city, m.province,
       COALESCE((SELECT max(h.at) FROM case_history h WHERE h.case_id = c.id AND h.to_state = c.state),
                c.opened_at) AS state_since,
       {WITHDRAWN}
FROM cases c JOIN mines m ON m.id = c.mine_id LEFT JOIN orders o ON o.id = c.order_id
WHERE c.id = $1
""".replace("{WITHDRAWN}", WITHDRAWN_SQL)


@dataclass(frozen=True, slots=True)
class Offer:
    """What the page offers: the actions allowed now, whether measures may be recorded, and why
    closing is not possible yet (a methane case missing measures), if so."""

    actions: tuple[Action, ...]
    measures: bool
    close_blocked: str | None


async def load_view(pool: asyncpg.Pool | asyncpg.Connection | PoolConnectionProxy, case_id: int, *, lock: bool = False
                    ) -> tuple[int, CaseView] | None:
    """(mine id, the lifecycle's view) of a case, or None."""
    row = await pool.fetchrow(_CASE + (" FOR UPDATE OF c" if lock else ""), case_id)
    return None if row is None else (row["mine_id"], case_view(row))


def offer(view: CaseView, principal: Principal, now: datetime) -> Offer:
    """Ask the lifecycle about each action with a well-formed request: what it allows is offered."""
    actor = principal.actor()
    allowed: list[Action] = []
    blocked: str | None = None
    for action in Action:
        deadline = now + timedelta(days=1) if action in (Action.PLAN, Action.REJECT) else None
        result = transition(view, action, actor, now=now, comment="-", deadline=deadline)
        if isinstance(result, Allowed):
            allowed.append(action)
        elif action is Action.CLOSE and result.reason == "conflict" and "measures" in result.detail:
            blocked = result.detail
    probe = record_measure(view, Measure.ANALYSE_CAUSE, actor, now=now, note=None)
    return Offer(tuple(allowed), not isinstance(probe, Refused), blocked)


async def record(pool: asyncpg.Pool, *, principal: Principal, case_id: int, measure: str, note: str | None,
                 now: datetime) -> None:
    """Record one of the four measures: the API's own `api.cases.service.record_measure` (the
    contract's POST /v1/cases/{id}/measures) does it. NotFound / Forbidden / Conflict / Invalid as the API."""
    try:
        body = MeasureIn.model_validate({"measure": measure, "comment": note or None})
    except ValidationError as exc:
        names = ", ".join(m.value for m in Measure)
        raise Invalid(f"measure must be one of {names}; the note must be text of at most 4000 characters") from exc
    await cases_service.record_measure(pool=pool, principal=principal, case_id=case_id, body=body, now=now)
