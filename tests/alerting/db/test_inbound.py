"""The SMS reply webhook: authentication, who may acknowledge, what a reply acknowledges."""

from __future__ import annotations

from datetime import timedelta

import pytest

from tests.alerting.db.conftest import (
    COUNTY_PHONE,
    M1_PHONE,
    M2_PHONE,
    MINE2,
    T0,
    Harness,
    insert_methane,
)
from tests.alerting.db.inbound_app import reply_app, send_reply

pytestmark = pytest.mark.integration


async def _open_case(h: Harness) -> int:
    await insert_methane(h.pool, start=T0, level="power_off")
    await h.tick()
    case_id: int = await h.pool.fetchval("SELECT id FROM cases")
    return case_id


async def _state(h: Harness, case_id: int) -> str:
    state: str = await h.pool.fetchval("SELECT state FROM cases WHERE id = $1", case_id)
    return state


async def test_a_reply_without_the_shared_secret_is_refused(harness: Harness) -> None:
    h = harness
    cid = await _open_case(h)
    assert (await send_reply(reply_app(h), M1_PHONE, f"1 {cid}", secret="guess")).status_code == 401
    # No secret configured: the endpoint refuses everything rather than accepting anyone.
    assert (await send_reply(reply_app(h, secret=None), M1_PHONE, f"1 {cid}", secret="")).status_code == 503
    assert await _state(h, cid) == "open"


async def test_only_numbers_registered_for_the_case_acknowledge_it(harness: Harness) -> None:
    h = harness
    cid = await _open_case(h)
    app = reply_app(h)
    # Another mine's duty phone, and a stranger: not registered for this case.
    for sender in (M2_PHONE, "13312345678"):
        response = await send_reply(app, sender, f"1 {cid}")
        assert response.status_code == 403, response.text
    # The county is registered at the case's level but does not acknowledge (rules.md §9).
    response = await send_reply(app, COUNTY_PHONE, f"1 {cid}")
    assert response.status_code == 403
    assert "only the mine's own users acknowledge" in response.text
    assert await _state(h, cid) == "open"
    # Not an acknowledgement at all: accepted (so the gateway does not retry) and ignored.
    ignored = await send_reply(app, M1_PHONE, "收到，马上处理")
    assert (ignored.status_code, ignored.json()["status"]) == (200, "ignored")
    assert (await send_reply(app, M1_PHONE, "1 999999")).status_code == 404
    # The mine's phone, written as people write it, with full-width digits.
    ok = await send_reply(app, "+86 138 0000 0101", f"１ {cid}")
    assert (ok.status_code, ok.json()["acknowledged"]) == (200, [cid]), ok.text
    again = await send_reply(app, M1_PHONE, f"1 {cid}")
    assert (again.status_code, again.json()["status"], again.json()["acknowledged"]) == (200, "unchanged", [])
    assert await _state(h, cid) == "acknowledged"
    actors = await h.pool.fetch("SELECT actor, role, comment FROM case_history WHERE action = 'acknowledge'")
    assert [tuple(r) for r in actors] == [(f"sms:{M1_PHONE}", "mine", f"SMS reply: １ {cid}")]


async def test_a_grouped_reply_acknowledges_only_the_cases_of_that_message(harness: Harness) -> None:
    h = harness
    # Under a point-scope pack (rules.md §2: configurable), two points of one face are two events.
    await insert_methane(h.pool, start=T0, level="power_off", point="140100000001_01MN0001_T0003", scope="point")
    await insert_methane(h.pool, start=T0, level="power_off", point="140100000001_01MN0001_T0004", scope="point")
    await insert_methane(h.pool, start=T0, level="power_off", mine=MINE2, point=f"{MINE2}_01MN0001_T0003")
    await h.tick()
    await h.advance(timedelta(minutes=1))
    await insert_methane(h.pool, start=T0, level="power_off", point="140100000001_01MN0001_T0005", scope="point")
    await h.advance(timedelta(minutes=1))  # a later case, in a later message
    ids = [r["id"] for r in await h.pool.fetch("SELECT id FROM cases ORDER BY id")]
    first_message_cases = await h.pool.fetch(
        "SELECT nm.case_id FROM notifications n JOIN notification_members nm ON nm.notification_id = n.id "
        "WHERE n.target = $1 AND n.reason = 'raised' ORDER BY n.created_at, nm.case_id", M1_PHONE)
    assert [r["case_id"] for r in first_message_cases] == [ids[0], ids[1], ids[3]]
    response = await send_reply(reply_app(h), M1_PHONE, f"1 {ids[0]}")
    assert sorted(response.json()["acknowledged"]) == [ids[0], ids[1]]
    states = {r["id"]: r["state"] for r in await h.pool.fetch("SELECT id, state FROM cases")}
    assert states == {ids[0]: "acknowledged", ids[1]: "acknowledged", ids[2]: "open", ids[3]: "open"}
