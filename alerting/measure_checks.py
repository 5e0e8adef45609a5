"""The data's verdict on measure 1 (停电撤人) of a methane case: did the power go off in time?

rules.md §4: after a methane reading at the power-off level at time t, the feed / relay point
of the methane point's `D` relation must report "off" within two patrol cycles. The rules
worker raises `power_off_failure` when it does not; it writes nothing when it does. The case,
though, must show either way: a regulator verifying a methane case wants "the data confirm
the power went off" as much as "the data show it did not".

For every open methane case, `check_power_off` judges its events' power-off episodes with the
same kernel the rule uses (`rules.integrity.relation.power_off_response`, same parameters):

- any trigger whose feed did not answer in time → `failed`, pointing at the live
  `power_off_failure` finding of that episode (once the rules worker has written it);
- every trigger answered → `confirmed`, with the feed and the time it reported off;
- otherwise (the response window still open, no `D` relation for the point, or the exceedance
  never reached the power-off level) → `not_checked`, with a detail saying which.

A changed verdict is written to the case's checklist with a `data_check` line in its history
(actor `system`), in one transaction (a not-checked check whose reason changed gets the new
reason without a history line); an unchanged one writes nothing, so a pass over quiet
cases does no work. The evacuation half stays `not_checked` until the personnel rule
`work_continued` exists.
"""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import datetime
from typing import Any

import asyncpg
import numpy as np

from alerting.actions import checklist_from_json, checklist_to_json
from alerting.checklist import BY_DATA_ACTOR, CheckStatus, DataCheckName, Measure
from alerting.store import Conn
from minewatch.timeutil import from_ns, to_ns
from rules.evaluate import iso
from rules.integrity.relation import PowerOffParams, power_off_response

DEFAULT_PARAMS = PowerOffParams()  # rules.md §4, as the rule uses them

# Open methane cases (they carry a checklist) with their events' power-off episodes, if any.
_CASES = """
WITH open_cases AS (
    SELECT c.id, c.state, c.checklist FROM cases c
    WHERE c.state <> 'closed' AND jsonb_array_length(c.checklist) > 0
      -- settled verdicts are not judged again: confirmed, or failed with its finding found
      AND NOT EXISTS (SELECT 1 FROM jsonb_array_elements(c.checklist) m, jsonb_array_elements(m->'data') d
                      WHERE d->>'name' = 'power_off'
                        AND (d->>'status' = 'confirmed' OR (d->>'status' = 'failed' AND d->>'finding_id' IS NOT NULL)))
    ORDER BY c.id
    LIMIT $1  -- whole cases, so that no case is judged on part of its episodes
)
SELECT c.id, c.state, c.checklist,
       e.point_id, p.code AS point, e.start_ts, e.end_ts, e.thresholds
FROM open_cases c
LEFT JOIN case_findings cf ON cf.case_id = c.id
LEFT JOIN findings f ON f.id = cf.finding_id AND f.ref_table = 'exceedance_events'
LEFT JOIN episodes e ON e.event_id = f.ref_id AND e.level = 'power_off'
LEFT JOIN points p ON p.id = e.point_id
ORDER BY c.id, e.start_ts
"""


async def check_power_off(conn: Conn, *, now: datetime, batch: int = 500,
                          params: PowerOffParams = DEFAULT_PARAMS) -> int:
    """Bring the power-off verdict of every open methane case up to date; returns how many changed."""
    rows = await conn.fetch(_CASES, batch)
    by_case: dict[int, list[asyncpg.Record]] = {}
    for r in rows:
        by_case.setdefault(int(r["id"]), []).append(r)
    changed = 0
    for case_id, eps in by_case.items():
        checklist = checklist_from_json(eps[0]["checklist"])
        if checklist is None:
            continue
        old = next(c for c in checklist.item(Measure.POWER_OFF_EVACUATE).data if c.name is DataCheckName.POWER_OFF)
        status, finding_id, detail = await _verdict(conn, [e for e in eps if e["point_id"] is not None], now, params)
        if (status, finding_id, detail) == (old.status, old.finding_id, old.detail):
            continue
        check = replace(old, status=status, finding_id=finding_id, detail=detail,
                        checked_at=now if status is not CheckStatus.NOT_CHECKED else None)
        async with conn.transaction():
            await conn.execute("UPDATE cases SET checklist = $2::jsonb, updated_at = $3 WHERE id = $1",
                               case_id, json.dumps(checklist_to_json(checklist.with_data_check(check))), now)
            if status is old.status:
                changed += 1  # only the detail moved (why it is not checked yet): no history line
                continue
            await conn.execute(
                "INSERT INTO case_history(case_id, at, actor, role, action, from_state, to_state, comment, detail, "
                "effects, effects_done_at) VALUES ($1,$2,$3,'system','data_check',$4,$4,$5,$6::jsonb,'[]'::jsonb,$2)",
                case_id, now, BY_DATA_ACTOR, eps[0]["state"], detail or "",
                json.dumps({"check": DataCheckName.POWER_OFF.value, "status": status.value,
                            "finding_id": finding_id, "rule": check.rule}))
        changed += 1
    return changed


async def _verdict(conn: Conn, episodes: list[asyncpg.Record], now: datetime,
                   params: PowerOffParams) -> tuple[CheckStatus, int | None, str | None]:
    if not episodes:
        return CheckStatus.NOT_CHECKED, None, "the exceedance did not reach the power-off level: no power cut to confirm"
    now_ns = to_ns(now)
    answered: list[str] = []
    pending: list[str] = []
    for e in episodes:
        level = json.loads(e["thresholds"]).get("poweroff_hi")
        if level is None:
            pending.append(f"{e['point']}: no power-off threshold recorded for its episode")
            continue
        trigger = await conn.fetchval(
            "SELECT ts FROM readings WHERE point_id = $1 AND ts >= $2 AND ($3::timestamptz IS NULL OR ts <= $3) "
            "AND status & $4 = 0 AND value <> 'NaN' AND value >= $5 ORDER BY ts LIMIT 1",
            e["point_id"], e["start_ts"], e["end_ts"], params.exclude_mask, float(level))
        if trigger is None:
            pending.append(f"{e['point']}: no considered reading at the power-off level")
            continue
        feeds = await conn.fetch(
            "SELECT p.id, p.code FROM point_relations r JOIN points p ON p.id = r.target_point_id "
            "WHERE r.point_id = $1 AND r.kind = 'D' ORDER BY p.id", e["point_id"])
        if not feeds:
            pending.append(f"{e['point']}: no power-off relation (D) in the registry, so no feed point to check")
            continue
        t = to_ns(trigger)
        res = await _response(conn, t, [int(f["id"]) for f in feeds], now_ns, params)
        if res is None:
            pending.append(f"{e['point']}: the feed has until {from_ns(t + params.response_ns).isoformat()} to report off")
            continue
        failed, off_at = res
        codes = [str(f["code"]) for f in feeds]
        if failed:
            finding = await conn.fetchval(
                "SELECT id FROM findings WHERE rule = 'power_off_failure' AND subject = $1 AND state <> 'superseded' "
                "AND evidence->>'episode_start' = $2 ORDER BY id DESC LIMIT 1",
                e["point"], iso(to_ns(e["start_ts"])))
            if finding is None:
                finding = await conn.fetchval(
                    "SELECT id FROM findings WHERE rule = 'power_off_failure' AND subject = $1 AND state <> 'superseded' "
                    "AND start_ts = $2 ORDER BY id DESC LIMIT 1", e["point"], from_ns(t + params.response_ns))
            return (CheckStatus.FAILED, int(finding) if finding is not None else None,
                    f"{', '.join(codes)} did not report off within {params.response_ns // 10**9} s of "
                    f"{e['point']} reaching the power-off level at {trigger.isoformat()}")
        answered.append(f"{', '.join(codes)} reported off at {', '.join(a.isoformat() for a in off_at)} "
                        f"({e['point']} at the power-off level at {trigger.isoformat()})")
    if pending:
        return CheckStatus.NOT_CHECKED, None, "; ".join(pending)
    return CheckStatus.CONFIRMED, None, "; ".join(answered)


async def _response(conn: Conn, t: int, feeds: list[int], now_ns: int,
                    params: PowerOffParams) -> tuple[bool, list[datetime]] | None:
    """(failed, when each feed reported off) for a trigger at `t`, or None while still open."""
    rows = await conn.fetch(
        "SELECT point_id, ts, value, status FROM readings WHERE point_id = ANY($1::int[]) AND ts >= $2 AND ts <= $3 "
        "ORDER BY point_id, ts", feeds, from_ns(t), from_ns(t + params.response_ns))
    index = {f: k + 1 for k, f in enumerate(feeds)}  # 0 is the methane point
    data: dict[str, Any] = {
        "point_idx": np.array([index[int(r["point_id"])] for r in rows], np.int64),
        "ts": np.array([to_ns(r["ts"]) for r in rows], np.int64),
        "values": np.array([float(r["value"]) for r in rows], np.float64),
        "status": np.array([int(r["status"]) for r in rows], np.int64),
    }
    resp = power_off_response(
        data["point_idx"], data["ts"], data["values"], data["status"],
        trigger_point=np.array([0], np.int64), trigger_ts=np.array([t], np.int64),
        relation_point=np.zeros(len(feeds), np.int64), relation_feed=np.arange(1, len(feeds) + 1, dtype=np.int64),
        now_ns=now_ns, params=params)
    if len(resp.failed) == 0:
        return None  # not judged yet: the response window is still open
    if bool(resp.failed.any()):
        return True, []
    return False, [from_ns(int(a)) for a in resp.answered_at.tolist()]
