"""The console's page cache (api/console/cache.py): shared only by sessions of exactly the same scope,
with each person's own frame and CSRF token around the shared content, and cleared by console writes."""

from __future__ import annotations

import asyncio
import re

import httpx
import pytest

from api.auth.principal import Principal
from api.console.cache import PageCache, scope_key
from tests.api.scenario import M1, M2, M3, World
from tests.console.conftest import csrf_of, new_client, sign_in

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="session")]


def _cache(client: httpx.AsyncClient) -> PageCache:
    cache: PageCache = client._transport.app.state.console_cache  # type: ignore[attr-defined]
    return cache


def _state_of(html: str, case_id: int) -> str:
    """The state pill of one case's row on a case list."""
    row = re.search(rf'<tr[^>]*>\s*<td><a href="/console/cases/{case_id}">.*?</tr>', html, re.S)
    assert row, html[-2000:]
    m = re.search(r'class="pill cs-(\w+)"', row.group(0))
    assert m, row.group(0)
    return m.group(1)


async def test_scope_keys_differ_unless_the_mines_are_the_same() -> None:
    county_a = Principal.of(1, "a", "county", frozenset({"140121"}), {"m1": 1, "m2": 2})
    county_a2 = Principal.of(2, "a2", "county", frozenset({"140121"}), {"m1": 1, "m2": 2})
    county_b = Principal.of(3, "b", "county", frozenset({"140181"}), {"m3": 3})
    grown = Principal.of(4, "a3", "county", frozenset({"140121"}), {"m1": 1, "m2": 2, "m9": 9})
    mine1 = Principal.of(5, "m1", "mine", frozenset({"m1"}), {"m1": 1})
    mine2 = Principal.of(6, "m2", "mine", frozenset({"m2"}), {"m2": 2})
    assert scope_key(county_a) == scope_key(county_a2)  # two people of one county share
    assert len({scope_key(p) for p in (county_a, county_b, grown, mine1, mine2)}) == 5


async def test_single_flight_and_errors_are_not_cached() -> None:
    cache = PageCache(ttl=60)
    calls = 0

    async def produce() -> str:
        nonlocal calls
        calls += 1
        await asyncio.sleep(0.01)
        return f"v{calls}"

    assert await asyncio.gather(*(cache.get("k", produce) for _ in range(10))) == ["v1"] * 10
    assert calls == 1

    async def fail() -> str:
        raise RuntimeError("database down")

    with pytest.raises(RuntimeError):
        await cache.get("e", fail)
    assert await cache.get("e", produce) == "v2"
    cache.clear()
    assert await cache.get("k", produce) == "v3"
    assert await PageCache(ttl=0).get("k", produce) == "v4"  # off: every call renders



class _Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


async def test_a_busy_entry_is_renewed_before_it_expires_and_never_served_older_than_the_ttl() -> None:
    clock = _Clock()
    cache = PageCache(ttl=2, clock=clock)
    made: list[float] = []  # when each render started

    async def produce() -> str:
        made.append(clock.t)
        await asyncio.sleep(0)
        return f"v{len(made)}"

    assert await cache.get("k", produce) == "v1"
    clock.t = 1.0
    assert await cache.get("k", produce) == "v1" and cache.refreshes == 0  # young: no refresh
    clock.t = 1.6
    assert await cache.get("k", produce) == "v1"  # answered at once from the entry, still within the TTL ...
    assert cache.refreshes == 1
    await asyncio.sleep(0.01)  # ... while the refresh renders
    clock.t = 3.0  # past the first entry's life: the refreshed one, started at 1.6, answers
    assert await cache.get("k", produce) == "v2" and cache.misses == 1
    clock.t = 3.6  # 2 s after the refresh started: expired, not served
    assert await cache.get("k", produce) == "v3" and cache.misses == 2
    assert made == [0.0, 1.6, 3.6]


async def test_a_refresh_under_way_when_the_cache_is_cleared_is_dropped() -> None:
    clock = _Clock()
    cache = PageCache(ttl=2, clock=clock)
    release = asyncio.Event()
    calls = 0

    async def produce() -> str:
        nonlocal calls
        calls += 1
        if calls == 2:
            await release.wait()  # the refresh reads before the write ...
        return f"v{calls}"

    assert await cache.get("k", produce) == "v1"
    clock.t = 1.9
    assert await cache.get("k", produce) == "v1"  # starts the refresh
    cache.clear()  # ... a console write clears the cache ...
    release.set()
    await asyncio.sleep(0.01)  # ... and the refresh ends after it: its value is not kept
    assert await cache.get("k", produce) == "v3"


async def test_a_failed_refresh_keeps_the_entry_until_it_expires() -> None:
    clock = _Clock()
    cache = PageCache(ttl=2, clock=clock)
    fail = False

    async def produce() -> str:
        if fail:
            raise RuntimeError("database down")
        return "ok"

    assert await cache.get("k", produce) == "ok"
    fail, clock.t = True, 1.8
    assert await cache.get("k", produce) == "ok"
    await asyncio.sleep(0.01)
    clock.t = 1.99
    assert await cache.get("k", produce) == "ok"
    clock.t = 2.0
    with pytest.raises(RuntimeError):
        await cache.get("k", produce)

async def test_cache_never_serves_another_scope(clients: dict[str, httpx.AsyncClient], world: World) -> None:
    qx, gj, mine1, mine2 = clients["county_qx"], clients["county_gj"], clients["mine1"], clients["mine2"]
    # the same URL, one right after the other, from two scopes: each sees only its own mines
    a, b = (await qx.get("/console/")).text, (await gj.get("/console/")).text
    assert M1 in a and M3 not in a and M3 in b and M1 not in b
    a, b = (await qx.get("/console/cases")).text, (await gj.get("/console/cases")).text
    assert f'/console/cases/{world.cases["m1_open"]}"' in a and f'/console/cases/{world.cases["m1_open"]}"' not in b
    # a mine page cached for mine 1 is refused to mine 2's user, and mine 2's own page is its own
    for path in (f"/console/mines/{M1}", f"/console/mines/{M1}/live", f"/console/mines/{M1}/exceedances"):
        assert (await mine1.get(path)).status_code == 200
        r = await mine2.get(path)
        assert r.status_code == 404 and M1 not in r.text, path
    r = await mine2.get(f"/console/mines/{M2}")
    assert r.status_code == 200 and M1 not in r.text


async def test_sessions_of_one_scope_share_content_not_their_frame(app_transport: httpx.ASGITransport,
                                                                     clients: dict[str, httpx.AsyncClient]) -> None:
    first = clients["county_qx"]
    async with new_client(app_transport) as second:
        assert (await sign_in(second, "county_qx")).status_code == 303
        cache = _cache(first)
        one = await first.get(f"/console/mines/{M1}")
        hits = cache.hits
        two = await second.get(f"/console/mines/{M1}")
        assert cache.hits == hits + 1  # the second session was served the first one's content
        assert one.status_code == two.status_code == 200
        # each page carries its own session's CSRF token: the token is put in after the cache
        assert csrf_of(one.text) != csrf_of(two.text)
        assert csrf_of(one.text) == csrf_of((await first.get("/console/cases")).text)


async def test_a_case_action_is_seen_on_the_next_request(clients: dict[str, httpx.AsyncClient], world: World) -> None:
    mine1, qx = clients["mine1"], clients["county_qx"]
    cid = world.cases["m1_open"]
    assert _state_of((await mine1.get(f"/console/cases?mine={M1}")).text, cid) == "open"
    assert _state_of((await qx.get(f"/console/mines/{M1}")).text, cid) == "open"  # cached for the county too
    page = await mine1.get("/console/")
    r = await mine1.post(f"/console/cases/{cid}/actions", data={"action": "acknowledge"},
                         headers={"X-CSRF-Token": csrf_of(page.text), "HX-Request": "true"})
    assert r.status_code == 200, r.text
    # at once, not after the cache's TTL: the write cleared it
    assert _state_of((await mine1.get(f"/console/cases?mine={M1}")).text, cid) == "acknowledged"
    assert _state_of((await qx.get(f"/console/mines/{M1}")).text, cid) == "acknowledged"


async def test_a_case_page_shares_its_record_not_its_forms(app_transport: httpx.ASGITransport,
                                                           clients: dict[str, httpx.AsyncClient], world: World) -> None:
    first, cid = clients["mine1"], world.cases["m1_order"]
    cache = _cache(first)
    async with new_client(app_transport) as second:
        assert (await sign_in(second, "mine1")).status_code == 303
        one = await first.get(f"/console/cases/{cid}")
        hits = cache.hits
        two = await second.get(f"/console/cases/{cid}")
        assert cache.hits == hits + 1  # the record came from the first session's read
        assert one.status_code == two.status_code == 200
        # every form of each page carries its own session's token, never the other's
        for page in (one, two):
            assert set(re.findall(r'name="csrf" value="([^"]*)"', page.text)) == {csrf_of(page.text)}
        assert csrf_of(one.text) != csrf_of(two.text)
    assert 'data-action="submit"' in one.text  # the mine's own action, offered to the mine's user
    # a regulator of the county sees the case, without the mine's action: offers are asked per person
    qx = await clients["county_qx"].get(f"/console/cases/{cid}")
    assert qx.status_code == 200 and f"#{cid}" in qx.text and 'data-action="submit"' not in qx.text
    # another mine's user: the 404 of a case that does not exist, nothing of it
    r = await clients["mine2"].get(f"/console/cases/{cid}")
    assert r.status_code == 404 and M1 not in r.text
    # an action through the console shows on the next page at once, not after the cache's TTL
    r = await first.post(f"/console/cases/{cid}/actions", data={"action": "submit", "comment": "fan replaced"},
                         headers={"X-CSRF-Token": csrf_of(one.text), "HX-Request": "true"})
    assert r.status_code == 200, r.text
    again = await first.get(f"/console/cases/{cid}")
    assert re.search(r"<h1>.*?pill cs-rectified", again.text, re.S) and 'data-action="submit"' not in again.text
