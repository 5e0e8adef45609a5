"""GET /v1/cases and /v1/cases/{id}: filters, scope, the detail's findings, checklist, notifications, history."""

from __future__ import annotations

import asyncpg
import httpx
import pytest

from tests.api.conftest import auth
from tests.api.scenario import M1, M2, World

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="session")]

CASE_FIELDS = {"id", "mine", "rule", "level", "state", "opened_at"}


async def _ids(client: httpx.AsyncClient, world: World, label: str, **params: str | int) -> list[int]:
    r = await client.get("/v1/cases", params=params, headers=auth(world, label))
    assert r.status_code == 200, r.text
    items = r.json()["items"]
    assert all(set(c) >= CASE_FIELDS for c in items)
    return [c["id"] for c in items]


async def test_list_is_newest_first_and_scoped(client: httpx.AsyncClient, world: World) -> None:
    c = world.cases
    everything = [c["m1_open"], c["m1_order"], c["m2_rectified"], c["m2_closed"], c["m3_open"]]
    assert await _ids(client, world, "admin") == everything
    assert await _ids(client, world, "province") == everything
    assert await _ids(client, world, "county_qx") == everything[:4]
    assert await _ids(client, world, "county_gj") == [c["m3_open"]]
    assert await _ids(client, world, "mine1") == [c["m1_open"], c["m1_order"]]
    assert await _ids(client, world, "mine2") == [c["m2_rectified"], c["m2_closed"]]


async def test_filters(client: httpx.AsyncClient, world: World) -> None:
    c = world.cases
    assert await _ids(client, world, "admin", mine=M2) == [c["m2_rectified"], c["m2_closed"]]
    assert await _ids(client, world, "admin", state="open") == [c["m1_open"], c["m3_open"]]
    assert await _ids(client, world, "admin", rule="methane_exceedance", mine=M1) == [c["m1_open"]]
    assert await _ids(client, world, "admin", level="city") == [c["m2_rectified"]]
    # A mine outside the scope filters to nothing rather than answering 404.
    assert await _ids(client, world, "mine1", mine=M2) == []


async def test_pagination(client: httpx.AsyncClient, world: World) -> None:
    seen: list[int] = []
    cursor = None
    while True:
        params: dict[str, str | int] = {"limit": 2}
        if cursor:
            params["cursor"] = cursor
        body = (await client.get("/v1/cases", params=params, headers=auth(world, "admin"))).json()
        seen += [x["id"] for x in body["items"]]
        cursor = body["next_cursor"]
        if not cursor:
            break
    assert seen == await _ids(client, world, "admin")


async def test_detail(client: httpx.AsyncClient, world: World) -> None:
    r = await client.get(f"/v1/cases/{world.cases['m1_open']}", headers=auth(world, "mine1"))
    assert r.status_code == 200, r.text
    d = r.json()
    assert {"findings", "checklist", "history", "notifications"} <= set(d)
    assert d["mine"] == M1 and d["state"] == "open" and d["level"] == "county" and d["opened_at"].endswith("Z")
    (finding,) = d["findings"]
    assert finding["rule"] == "methane_exceedance" and finding["evidence"] == {"peak": 1.1}
    assert [i["measure"] for i in d["checklist"]] == [
        "power_off_evacuate", "analyse_cause", "stop_rectify", "hold_accountable"]
    assert not any(i["recorded"] for i in d["checklist"])
    (note,) = d["notifications"]
    assert note["state"] == "delivered" and note["channel"] == "sms" and "target" not in note
    assert d["history"] == []
    other = (await client.get(f"/v1/cases/{world.cases['m2_rectified']}", headers=auth(world, "admin"))).json()
    assert other["checklist"] == [] and other["findings"] == []


@pytest.mark.parametrize(("label", "case", "visible"), [
    ("mine1", "m1_open", True), ("mine1", "m2_rectified", False), ("mine2", "m1_open", False),
    ("county_gj", "m1_open", False), ("county_gj", "m3_open", True), ("city", "m3_open", True),
])
async def test_detail_scope(client: httpx.AsyncClient, world: World, label: str, case: str, visible: bool) -> None:
    r = await client.get(f"/v1/cases/{world.cases[case]}", headers=auth(world, label))
    assert r.status_code == (200 if visible else 404)


async def test_nonexistent_and_out_of_range_ids(client: httpx.AsyncClient, world: World) -> None:
    h = auth(world, "admin")
    assert (await client.get("/v1/cases/987654321", headers=h)).status_code == 404
    for bad in ("0", "-1", "9223372036854775808", "99999999999999999999999999", "abc", "1.5"):
        r = await client.get(f"/v1/cases/{bad}", headers=h)
        assert r.status_code == 422, (bad, r.text)


async def test_a_case_whose_findings_are_all_withdrawn_says_so(client: httpx.AsyncClient, pool: asyncpg.Pool,
                                                                world: World) -> None:
    """Re-evaluation withdrew the case's only finding (superseded, no successor): list and detail
    say `withdrawn`, the finding too, and the county may close the case from `open` with a comment."""
    cid, h = world.cases["m1_open"], auth(world, "county_qx")

    async def seen() -> tuple[bool, bool, list[bool]]:
        listed = {c["id"]: c["withdrawn"] for c in (await client.get("/v1/cases", headers=h)).json()["items"]}
        d = (await client.get(f"/v1/cases/{cid}", headers=h)).json()
        return listed[cid], d["withdrawn"], [f["withdrawn"] for f in d["findings"]]

    assert await seen() == (False, False, [False])
    (fid,) = [r["finding_id"] for r in await pool.fetch("SELECT finding_id FROM case_findings WHERE case_id = $1", cid)]
    try:
        await pool.execute("UPDATE findings SET state = 'superseded' WHERE id = $1", fid)
        assert await seen() == (True, True, [True])
        # a case without findings is not withdrawn: there is nothing to have withdrawn
        assert (await client.get(f"/v1/cases/{world.cases['m1_order']}", headers=h)).json()["withdrawn"] is False
        r = await client.post(f"/v1/cases/{cid}/actions", headers=h,
                              json={"action": "close", "comment": "calibration gas, not methane"})
        assert r.status_code == 200 and r.json()["state"] == "closed" and r.json()["withdrawn"] is True, r.text
    finally:
        await pool.execute("UPDATE cases SET state = 'open', closed_at = NULL WHERE id = $1", cid)
        await pool.execute("DELETE FROM case_history WHERE case_id = $1", cid)
        await pool.execute("UPDATE findings SET state = 'open' WHERE id = $1", fid)
