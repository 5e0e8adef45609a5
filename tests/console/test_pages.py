"""The console's pages render for a signed-in person, in Chinese by default and in English on request."""

from __future__ import annotations

import io

import httpx
import pytest
from openpyxl import load_workbook

from tests.api.scenario import M1, M2, M3, World

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="session")]


async def test_root_redirects_to_the_console(app_transport: httpx.ASGITransport) -> None:
    async with httpx.AsyncClient(transport=app_transport, base_url="http://console.test") as c:
        r = await c.get("/")
        assert r.status_code == 307 and r.headers["location"] == "/console/"
        r = await c.get("/console/")
        assert r.status_code == 303 and r.headers["location"].startswith("/console/login")


async def test_overview_shows_the_scope(clients: dict[str, httpx.AsyncClient], world: World) -> None:
    r = await clients["county_qx"].get("/console/")
    assert r.status_code == 200
    assert "总览" in r.text and M1 in r.text and M2 in r.text and M3 not in r.text
    assert "停产整顿" in r.text  # M1 is under order
    r = await clients["province"].get("/console/?lang=en")
    assert "Overview" in r.text and M3 in r.text
    assert r.cookies.get("mw_lang") == "en"


async def test_mine_page_and_live_fragment(clients: dict[str, httpx.AsyncClient]) -> None:
    r = await clients["mine1"].get(f"/console/mines/{M1}")
    assert r.status_code == 200
    assert "T0003" in r.text and 'hx-trigger="every 5s"' in r.text
    assert "methane_repeat_week" in r.text  # the active order
    live = await clients["mine1"].get(f"/console/mines/{M1}/live")
    assert live.status_code == 200 and "<html" not in live.text


async def test_case_board_and_case_page(clients: dict[str, httpx.AsyncClient], world: World) -> None:
    r = await clients["county_qx"].get("/console/cases")
    assert r.status_code == 200 and f'/console/cases/{world.cases["m1_open"]}' in r.text
    r = await clients["county_qx"].get(f'/console/cases/{world.cases["m1_open"]}')
    assert r.status_code == 200
    assert "四项措施" in r.text and "qx-duty" in r.text  # checklist, notification
    assert 'data-action="acknowledge"' not in r.text  # the mine's action is not offered to the county
    r = await clients["mine1"].get(f'/console/cases/{world.cases["m1_open"]}')
    assert 'data-action="acknowledge"' in r.text and 'data-measure="analyse_cause"' in r.text


async def test_exceedance_history_and_exports(clients: dict[str, httpx.AsyncClient], world: World) -> None:
    c = clients["county_qx"]
    r = await c.get(f"/console/mines/{M1}/exceedances")
    assert r.status_code == 200 and str(world.events[M1][0]) in r.text
    r = await c.get(f"/console/mines/{M1}/exceedances?gas=co")
    assert str(world.events[M1][1]) in r.text and f"<td>{world.events[M1][0]}</td>" not in r.text
    r = await c.get(f"/console/mines/{M1}/exceedances?format=csv")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    lines = r.text.lstrip("\ufeff").strip().splitlines()
    assert lines[0].startswith("event,gas") and len(lines) == 1 + 5  # 4 events, one with two episodes
    r = await c.get(f"/console/mines/{M1}/exceedances?format=xlsx")
    ws = load_workbook(io.BytesIO(r.content)).active
    assert ws is not None and ws.max_row == 6


async def test_local_docs_have_no_cdn(app_transport: httpx.ASGITransport) -> None:
    async with httpx.AsyncClient(transport=app_transport, base_url="http://console.test") as c:
        for path in ("/docs", "/redoc"):
            r = await c.get(path)
            assert r.status_code == 200 and "http" not in r.text.replace("http-equiv", "")
        r = await c.get("/console/static/vendor/swagger-ui/swagger-ui-bundle.js")
        assert r.status_code == 200
