"""The console in headless Chromium against the real app (uvicorn), the real database and the API
tests' world: sign-in, scope, a methane case walked to closed by two people, the offline network,
and a screenshot of each page (docs/console/)."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from api.console.web import LOCAL
from tests.api.scenario import M1, M2, M3, TAILINGS, World, point_id, seed
from tests.conftest import ROOT
from tests.console.browser import require_browser
from tests.console.conftest import PASSWORD, add_users

pytestmark = [pytest.mark.integration]

SHOTS = Path(os.environ.get("MINEWATCH_SCREENSHOTS", ROOT / "docs" / "console"))
VIEWPORT = {"width": 1920, "height": 1080}
PEPPER = "console-browser-test-pepper-0123456789abcdef"
LOOPBACK = {"127.0.0.1", "localhost", "::1", "[::1]"}


async def add_readings(dsn: str, now: datetime) -> None:
    """Two hours of methane at 30 s on the other points of M1's face F11301, T0004 rising past its
    alarm threshold in the last hour (the world's open event), so the evidence chart shows the rise."""
    import math

    import asyncpg

    conn = await asyncpg.connect(dsn)
    try:
        start = now - timedelta(hours=2)
        rows = []
        for code in ("T0004", "T0005", "T0006", "T0013", "T0014"):
            pid = await point_id(conn, f"{M1}_01MN0001_{code}")
            for i in range(240):
                ts = start + timedelta(seconds=30 * i)
                base = 0.25 + 0.05 * math.sin(i / 9)
                if code == "T0004" and ts >= now - timedelta(hours=1, minutes=5):
                    base = min(1.12, 0.3 + 0.05 * (i - 110)) if ts < now - timedelta(minutes=35) else 0.4
                rows.append((pid, ts, round(base, 3), 0))
        await conn.copy_records_to_table("readings", records=rows, columns=["point_id", "ts", "value", "status"])
    finally:
        await conn.close()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def server(db: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, World]]:
    """`minewatch api` as a real process on a free port, over the seeded world and its users."""
    now = datetime.now(UTC).replace(microsecond=0)
    world = asyncio.run(seed(db, now))
    asyncio.run(add_users(db, now))
    asyncio.run(add_readings(db, now))
    port = _free_port()
    log = tmp_path_factory.mktemp("api") / "api.log"
    env = {**os.environ, "DATABASE_URL": db, "MINEWATCH_TOKEN_PEPPER": PEPPER, "PYTHONUNBUFFERED": "1"}
    with log.open("wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "launcher", "api", "--port", str(port)], env=env, cwd=ROOT,
                                stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"the API did not start: {log.read_text()[-2000:]}")
            time.sleep(0.1)
        yield base, world
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
    assert PASSWORD not in log.read_text(), "a password reached the log"


@pytest.fixture(scope="module")
def browser(server: tuple[str, World]) -> Iterator[Any]:
    path = require_browser()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=path, headless=True, args=["--no-sandbox", "--disable-gpu"])
        try:
            yield b
        finally:
            b.close()


class Offline:
    """Every request of a context goes through here: loopback continues, anything else is aborted
    and remembered, as if the control room's network were unplugged."""

    def __init__(self) -> None:
        self.outside: list[str] = []

    def __call__(self, route: Any) -> None:
        host = urlsplit(route.request.url).hostname or ""
        if route.request.url.startswith(("data:", "blob:")) or host in LOOPBACK:
            route.continue_()
        else:
            self.outside.append(route.request.url)
            route.abort()


@pytest.fixture
def contexts(browser: Any) -> Iterator[tuple[Any, Offline]]:
    guard = Offline()
    made: list[Any] = []

    def new(locale: str = "zh-CN") -> Any:
        # a control room in China: the charts' time axes in China's time, as the pages' tables are
        ctx = browser.new_context(viewport=VIEWPORT, locale=locale, timezone_id="Asia/Shanghai", accept_downloads=True)
        ctx.route("**/*", guard)
        made.append(ctx)
        return ctx

    yield new, guard  # type: ignore[misc]
    for ctx in made:
        ctx.close()
    assert guard.outside == [], f"requests left the machine: {guard.outside}"


def sign_in(ctx: Any, base: str, username: str) -> Any:
    page = ctx.new_page()
    page.goto(f"{base}/")
    assert "/console/login" in page.url
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"{base}/console/")
    return page


def shot(page: Any, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.wait_for_timeout(300)  # ECharts draws on the next frame
    page.screenshot(path=str(SHOTS / f"{name}.png"))


def test_docs_load_offline(server: tuple[str, World], contexts: tuple[Any, Offline]) -> None:
    base, _ = server
    new, guard = contexts
    page = new().new_page()
    page.goto(f"{base}/docs")
    page.wait_for_selector(".swagger-ui .info .title", timeout=15000)
    assert "Minewatch API" in page.inner_text(".swagger-ui .info .title")
    shot(page, "docs")
    page.goto(f"{base}/redoc")
    page.wait_for_selector("text=Minewatch API", timeout=15000)
    page.goto(f"{base}/console/login")
    shot(page, "login")
    assert guard.outside == []


def test_county_and_mine_walk_a_methane_case(server: tuple[str, World], contexts: tuple[Any, Offline]) -> None:
    from playwright.sync_api import expect

    base, world = server
    new, guard = contexts
    county = sign_in(new(), base, "county_qx")
    # the overview: only the county's mines, the map drawn
    rows = county.inner_text("#mines")
    assert M1 in rows and M2 in rows and TAILINGS in rows and M3 not in rows
    county.wait_for_selector("[data-chart=map] canvas")
    shot(county, "overview")
    # the case board, and the methane case the world raised
    county.click("header nav a[href='/console/cases']")
    cid = world.cases["m1_open"]
    county.wait_for_selector(f"a[href='/console/cases/{cid}']")
    shot(county, "cases")
    county.click(f"a[href='/console/cases/{cid}']")
    county.wait_for_url(f"{base}/console/cases/{cid}")  # and its scripts (htmx, the CSRF header) loaded
    assert county.locator("button[data-action=acknowledge]").count() == 0  # not the county's to do
    # the county tries the mine's action anyway: refused, and the page says why
    county.evaluate(f"htmx.ajax('POST', '/console/cases/{cid}/actions', "
                    "{target: '#case-body', swap: 'outerHTML', values: {action: 'acknowledge'}})")
    county.wait_for_selector("#refusal")
    refusal = county.inner_text("#refusal")
    assert "403" in refusal and "only the mine's own users acknowledge" in refusal
    shot(county, "case-refused")

    mine = sign_in(new(), base, "mine1")
    mine.goto(f"{base}/console/cases/{cid}")
    mine.click("button[data-action=acknowledge]")
    mine.wait_for_selector("button[data-action=plan]")
    local = (datetime.now(UTC) + timedelta(days=3)).astimezone(LOCAL).strftime("%Y-%m-%dT%H:%M")
    plan = mine.locator("form.action", has=mine.locator("button[data-action=plan]"))
    plan.locator("input[name=deadline]").fill(local)
    plan.locator("input[name=comment]").fill("加强通风，更换局扇")
    plan.locator("button[data-action=plan]").click()
    mine.wait_for_selector("button[data-action=submit]")
    submit = mine.locator("form.action", has=mine.locator("button[data-action=submit]"))
    submit.locator("input[name=comment]").fill("局扇已更换，浓度恢复正常")
    submit.locator("button[data-action=submit]").click()
    mine.wait_for_selector("text=待验收")
    for measure in ("power_off_evacuate", "analyse_cause", "stop_rectify", "hold_accountable"):
        before = mine.locator("#measures .cs-closed").count()
        mine.click(f"button[data-measure={measure}]")
        expect(mine.locator("#measures .cs-closed")).to_have_count(before + 1)
    assert mine.locator("#measures .bad").count() == 0

    county.goto(f"{base}/console/cases/{cid}")
    county.click("button[data-action=verify]")
    county.wait_for_selector("button[data-action=close]")
    county.click("button[data-action=close]")
    county.wait_for_selector("text=已销号")
    history = county.inner_text("#history")
    for step in ("叫应", "制定整改方案", "提交整改材料", "验收通过", "销号", "分析原因"):
        assert step in history
    shot(county, "case")
    assert guard.outside == []


def test_mine_page_refreshes_and_history_exports(server: tuple[str, World], contexts: tuple[Any, Offline]) -> None:
    base, _ = server
    new, _guard = contexts
    page = sign_in(new(), base, "mine1")
    page.goto(f"{base}/console/mines/{M1}")
    page.wait_for_selector(".point [data-chart=series] canvas")
    with page.expect_response(lambda r: r.url.endswith(f"/console/mines/{M1}/live"), timeout=8000) as live:
        pass
    assert live.value.status == 200
    assert "T0003" in page.inner_text("#live")
    shot(page, "mine")
    page.goto(f"{base}/console/mines/{M1}/exceedances")
    page.wait_for_selector("#events")
    shot(page, "history")
    with page.expect_download() as dl:
        page.click("button[value=xlsx]")
    assert dl.value.suggested_filename.startswith(f"exceedances_{M1}_") and dl.value.suggested_filename.endswith(".xlsx")
    # the English switch
    page.click("a.lang")
    page.wait_for_selector("text=Exceedance history")


def test_a_mine_of_another_mine_sees_nothing(server: tuple[str, World], contexts: tuple[Any, Offline]) -> None:
    base, world = server
    new, _guard = contexts
    page = sign_in(new(), base, "mine2")
    assert M1 not in page.content() and M2 in page.inner_text("#mines")
    for path in (f"/console/cases/{world.cases['m1_open']}", f"/console/mines/{M1}",
                 f"/console/mines/{M1}/exceedances"):
        response = page.goto(f"{base}{path}")
        assert response is not None and response.status == 404
        assert M1 not in page.inner_text("main")
    page.goto(f"{base}/console/cases")
    assert f"/console/cases/{world.cases['m1_open']}" not in page.content()
    shot(page, "cases-mine2")
