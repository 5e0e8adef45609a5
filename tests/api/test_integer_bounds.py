"""Integers from clients never reach the database unchecked: signed cursors with huge numbers,
path ids and limits beyond bigint are 400 / 404 / 422, never 500."""

from __future__ import annotations

import httpx
import pytest

from api.errors import BadCursor
from api.pagination import CursorCodec
from tests.api.conftest import auth
from tests.api.scenario import M1, PEPPER, World

CODEC = CursorCodec(PEPPER.encode())  # the app's own key: these cursors carry a valid signature

HUGE = [2**63, -(2**63) - 1, 10**30, 10**4000]


@pytest.mark.parametrize("value", HUGE)
@pytest.mark.parametrize(("kind", "shape"), [("dead-letters", ("time", "int")), ("cases", ("time", "int"))])
def test_a_signed_cursor_with_huge_numbers_is_refused(value: int, kind: str, shape: tuple[str, str]) -> None:
    for key in ((value, 1), (1, value)):
        cursor = CODEC.encode(kind, key)
        with pytest.raises(BadCursor):
            CODEC.decode(cursor, kind, shape)  # type: ignore[arg-type]


def test_cursor_bounds_keep_what_the_server_issues() -> None:
    from datetime import UTC, datetime
    at = datetime(2026, 1, 1, tzinfo=UTC)
    assert CODEC.decode(CODEC.encode("x", (at, 2**63 - 1)), "x", ("time", "int")) == (at, 2**63 - 1)


LISTS = ["/v1/dead-letters", "/v1/cases", f"/v1/mines/{M1}/exceedances", f"/v1/mines/{M1}/orders",
         f"/v1/mines/{M1}/accidents"]


@pytest.mark.integration
@pytest.mark.asyncio(loop_scope="session")
@pytest.mark.parametrize("path", LISTS)
async def test_signed_cursors_with_huge_numbers_are_400_on_every_list(client: httpx.AsyncClient, world: World,
                                                                      path: str) -> None:
    page = await client.get(path, params={"limit": 1}, headers=auth(world, "admin"))
    assert page.status_code == 200, page.text
    kinds = {"/v1/dead-letters": "dead-letters", "/v1/cases": "cases"}
    kind = kinds.get(path, path.rsplit("/", 1)[-1])
    for key in ((2**63, 1), (1, 2**63), (10**30, 10**30), (-(2**70), 5), (1, 2, 3), ("x", 1)):
        cursor = CODEC.encode(kind, key)
        r = await client.get(path, params={"cursor": cursor}, headers=auth(world, "admin"))
        assert r.status_code == 400, (path, key, r.status_code, r.text)
        assert r.json()["type"].endswith("/bad-cursor")


@pytest.mark.integration
@pytest.mark.asyncio(loop_scope="session")
@pytest.mark.parametrize(("path", "status"), [
    ("/v1/cases/0", 422), ("/v1/cases/-5", 422), (f"/v1/cases/{2**63}", 422), ("/v1/cases/" + "9" * 5000, 422),
    (f"/v1/cases/{2**63 - 1}", 404), ("/v1/dead-letters/0", 422), (f"/v1/dead-letters/{2**64}", 422),
    ("/v1/cases?limit=0", 422), ("/v1/cases?limit=1001", 422), (f"/v1/cases?limit={10**40}", 422),
    ("/v1/cases?limit=-1", 422), ("/v1/cases?limit=1e3", 422),
    (f"/v1/mines/{M1}/points/x/readings?step={10**7}d", 422), (f"/v1/mines/{M1}/accidents?limit={2**63}", 422),
])
async def test_integers_in_paths_and_queries(client: httpx.AsyncClient, world: World, path: str, status: int) -> None:
    r = await client.get(path, headers=auth(world, "admin"))
    assert r.status_code == status, (path, r.text)
    r = await client.post(path.split("?")[0] + "/actions", json={"action": "acknowledge"}, headers=auth(world, "admin"))
    assert r.status_code < 500, (path, r.text)
